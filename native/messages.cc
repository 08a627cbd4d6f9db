// messages: reading a socket fd (nstar-init's control socket, test pipes) as
// a stream of messages on the calling thread's libuv loop (FdWatch,
// fd-watch.h). Main thread in the runtime; no static mutable state.
#include <sys/socket.h>

#include <cerrno>
#include <memory>

#include "common.h"
#include "fd-watch.h"

namespace nstar {
namespace {

// At most this many recv() per readiness callback. The poll is level-triggered:
// what is left is read on the loop's next turn, after the timers, the console
// and every other fd had theirs. A peer that writes faster than we read can
// therefore never hold the main thread (it once looped until EAGAIN).
constexpr int kReadsPerTurn = 8;

// Delivers each message (seqpacket/datagram) or chunk (stream) as a Buffer;
// null once at EOF or error, when the watch ends and the fd is closed.
class MessageWatch : public FdWatch {
 protected:
  void OnReadable(int status) override {
    Napi::Env env = Env();
    for (int reads = 0; reads < kReadsPerTurn; reads++) {
      if (!active()) return;  // the callback closed us
      char buf[65536];
      ssize_t n = recv(fd(), buf, sizeof buf, MSG_DONTWAIT);
      // A peer that closed with our messages unread in its queue makes the
      // kernel report ECONNRESET once; what it sent before is still queued.
      if (n < 0 && (errno == EINTR || errno == ECONNRESET)) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) return Finish({env.Null()});
      Call({Napi::Buffer<char>::Copy(env, buf, static_cast<size_t>(n))});
    }
  }
};

// watchMessages(fd, onMessage) -> {close()}; takes ownership of fd.
Napi::Value WatchMessages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto w = std::make_shared<MessageWatch>();
  Napi::Object r = w->Start(env, fd, info[1].As<Napi::Function>(), "nstar.watchMessages");
  r.Set("close", CloseFunction(env, w));
  return r;
}

}  // namespace

void RegisterMessages(Napi::Env env, Napi::Object exports) {
  exports.Set("watchMessages", Napi::Function::New(env, WatchMessages, "watchMessages"));
}

}  // namespace nstar

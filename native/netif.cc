// netif module: the network interfaces of a process's network namespace
// (name, MAC, up, addresses) for `inspect` (spec/streams.md, firkin's
// network_interfaces). getifaddrs() answers for the calling thread's
// namespace, so a short-lived thread joins the target namespace with setns
// and dies with it: neither the main thread nor a libuv pool thread ever
// changes namespace. Threads: netInterfaces and its callback run on the
// calling thread (the main thread); a libuv pool thread starts and joins the
// short-lived one. No static mutable state.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common.h"

namespace nstar {
namespace {

struct Address {
  std::string family;
  std::string address;
  int prefix;
};

struct Interface {
  std::string name;
  std::string mac;
  bool up = false;
  bool running = false;
  bool loopback = false;
  std::vector<Address> addresses;
};

struct NetifJob {
  std::string nsPath;
  int err = 0;
  const char* step = "";
  std::vector<Interface> interfaces;
};

int PrefixLength(const sockaddr* mask) {
  if (!mask) return 0;
  const unsigned char* b;
  size_t n;
  if (mask->sa_family == AF_INET) {
    b = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(mask)->sin_addr);
    n = 4;
  } else if (mask->sa_family == AF_INET6) {
    b = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr);
    n = 16;
  } else {
    return 0;
  }
  int bits = 0;
  for (size_t i = 0; i < n; i++) bits += __builtin_popcount(b[i]);
  return bits;
}

void* NetifThread(void* arg) {
  auto* job = static_cast<NetifJob*>(arg);
  int ns = open(job->nsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    job->err = errno;
    job->step = "open";
    return nullptr;
  }
  if (setns(ns, CLONE_NEWNET) != 0) {
    job->err = errno;
    job->step = "setns";
    close(ns);
    return nullptr;
  }
  close(ns);
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    job->err = errno;
    job->step = "getifaddrs";
    return nullptr;
  }
  std::map<std::string, size_t> index;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    std::string name = a->ifa_name ? a->ifa_name : "";
    auto it = index.find(name);
    if (it == index.end()) {
      it = index.emplace(name, job->interfaces.size()).first;
      job->interfaces.push_back(Interface{});
      job->interfaces.back().name = name;
    }
    Interface& i = job->interfaces[it->second];
    i.up = (a->ifa_flags & IFF_UP) != 0;
    i.running = (a->ifa_flags & IFF_RUNNING) != 0;
    i.loopback = (a->ifa_flags & IFF_LOOPBACK) != 0;
    if (!a->ifa_addr) continue;
    int fam = a->ifa_addr->sa_family;
    if (fam == AF_PACKET) {
      auto* ll = reinterpret_cast<sockaddr_ll*>(a->ifa_addr);
      std::string m;
      for (int k = 0; k < ll->sll_halen && k < 8; k++) {
        char b[4];
        snprintf(b, sizeof b, "%02x", ll->sll_addr[k]);
        if (k) m += ':';
        m += b;
      }
      i.mac = m;
    } else if (fam == AF_INET || fam == AF_INET6) {
      char buf[INET6_ADDRSTRLEN] = "";
      const void* src = fam == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr)
                                       : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr);
      inet_ntop(fam, src, buf, sizeof buf);
      i.addresses.push_back({fam == AF_INET ? "inet" : "inet6", buf, PrefixLength(a->ifa_netmask)});
    }
  }
  freeifaddrs(list);
  return nullptr;
}

class NetifWorker : public Napi::AsyncWorker {
 public:
  NetifWorker(Napi::Function cb, std::string nsPath) : Napi::AsyncWorker(cb, "nstar.netInterfaces") { job_.nsPath = std::move(nsPath); }

  void Execute() override {
    pthread_t t;
    int e = pthread_create(&t, nullptr, NetifThread, &job_);
    if (e != 0) {
      job_.err = e;
      job_.step = "pthread_create";
      return;
    }
    pthread_join(t, nullptr);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (job_.err != 0) {
      Callback().Call({ErrnoError(env, job_.err, job_.step, job_.nsPath)});
      return;
    }
    Napi::Array out = Napi::Array::New(env, job_.interfaces.size());
    for (size_t k = 0; k < job_.interfaces.size(); k++) {
      const Interface& i = job_.interfaces[k];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", i.name);
      o.Set("mac", i.mac.empty() ? env.Null() : Napi::String::New(env, i.mac));
      o.Set("up", i.up);
      o.Set("running", i.running);
      o.Set("loopback", i.loopback);
      Napi::Array as = Napi::Array::New(env, i.addresses.size());
      for (size_t j = 0; j < i.addresses.size(); j++) {
        Napi::Object a = Napi::Object::New(env);
        a.Set("family", i.addresses[j].family);
        a.Set("address", i.addresses[j].address);
        a.Set("prefix", i.addresses[j].prefix);
        as.Set(static_cast<uint32_t>(j), a);
      }
      o.Set("addresses", as);
      out.Set(static_cast<uint32_t>(k), o);
    }
    Callback().Call({env.Null(), out});
  }

 private:
  NetifJob job_;
};

// netInterfaces(pid, cb(err, interfaces))
Napi::Value NetInterfaces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "netInterfaces(pid, callback)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = "/proc/" + std::to_string(info[0].As<Napi::Number>().Int32Value()) + "/ns/net";
  (new NetifWorker(info[1].As<Napi::Function>(), path))->Queue();
  return env.Undefined();
}

}  // namespace

void RegisterNetif(Napi::Env env, Napi::Object exports) {
  exports.Set("netInterfaces", Napi::Function::New(env, NetInterfaces, "netInterfaces"));
}

}  // namespace nstar

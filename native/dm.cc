// dm module of the nstar addon: one raw device-mapper ioctl on
// /dev/mapper/control. The dm_ioctl buffers (header, target specs, table
// string) are built and parsed in TypeScript (src/actors/mount/dm-ioctl.ts), where
// golden byte tests pin them; this file only carries a buffer to the kernel
// and back. Runs in Piscina mount workers.
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace nstar {
namespace {

constexpr const char* kControl = "/dev/mapper/control";
// struct dm_ioctl is 312 bytes; its data_size field (offset 12) is the whole
// buffer's length.
constexpr size_t kHeaderSize = 312;

// dmIoctl(request, buffer) → Result<Buffer>: the kernel's reply, same size.
Napi::Value DmIoctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer())
    throw Napi::TypeError::New(env, "dmIoctl: expected (request: number, buffer: Buffer)");
  unsigned long request = static_cast<unsigned long>(info[0].As<Napi::Number>().Int64Value());
  Napi::Buffer<uint8_t> in = info[1].As<Napi::Buffer<uint8_t>>();
  if (in.Length() < kHeaderSize) throw Napi::RangeError::New(env, "dmIoctl: buffer shorter than struct dm_ioctl");
  uint32_t data_size;
  memcpy(&data_size, in.Data() + 12, sizeof data_size);
  if (data_size != in.Length()) throw Napi::RangeError::New(env, "dmIoctl: data_size does not match the buffer length");
  // Copy: the kernel writes its reply into the buffer.
  std::vector<uint8_t> buf(in.Data(), in.Data() + in.Length());
  int fd = open(kControl, O_RDWR | O_CLOEXEC);
  if (fd < 0) return Fail(env, errno, "open", kControl);
  int r = ioctl(fd, request, buf.data());
  int err = errno;
  close(fd);
  if (r != 0) return Fail(env, err, "ioctl(dm)", kControl);
  Napi::Object ok = Napi::Object::New(env);
  ok.Set("ok", true);
  ok.Set("value", Napi::Buffer<uint8_t>::Copy(env, buf.data(), buf.size()));
  return ok;
}

}  // namespace

void RegisterDm(Napi::Env env, Napi::Object exports) {
  exports.Set("dmIoctl", Napi::Function::New(env, DmIoctl, "dmIoctl"));
}

}  // namespace nstar

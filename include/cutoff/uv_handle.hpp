#pragma once
// Ownership of libuv handles.
//
// libuv allows a handle's memory to be freed only in (or after) its close
// callback, so an owner cannot simply embed a handle and die. A UvPtr owns a
// heap block that starts with (or contains) a handle; destroying the UvPtr
// hands the handle to uv_close and the block is freed in the close callback.
// This is the one path through which every handle in cutoff is closed.

#include <uv.h>

#include <memory>

namespace cutoff {

// Every libuv handle type starts with the fields of uv_handle_t.
template <class H>
requires requires(H* h) {
  h->loop;
  h->type;
  h->close_cb;
}
uv_handle_t* uv_handle_of(H* handle) {
  return reinterpret_cast<uv_handle_t*>(handle);
}

template <class T>
struct UvCloser {
  void operator()(T* block) const {
    uv_handle_t* handle = uv_handle_of(block);
    // From here on `data` belongs to the close path: no other callback of a
    // closing handle runs except the ones libuv cancels, and those look at
    // their request's own `data`, never at the handle's.
    handle->data = block;
    uv_close(handle, [](uv_handle_t* h) { delete static_cast<T*>(h->data); });
  }
};

template <class T>
using UvPtr = std::unique_ptr<T, UvCloser<T>>;

// Allocates a zeroed block; the caller initialises the handle inside it with
// the matching uv_*_init before the UvPtr can be destroyed.
template <class T>
UvPtr<T> make_uv() {
  return UvPtr<T>(new T{});
}

}  // namespace cutoff

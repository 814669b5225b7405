#pragma once
// What the admin endpoint asks of the running proxy. The admin listener runs
// on the control thread; this interface hides the workers behind it.

#include <functional>
#include <string>
#include <vector>

#include "cutoff/address.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/test_registry.hpp"

namespace cutoff {

class AdminSource {
 public:
  // /readyz: listening with a loaded config and not draining.
  virtual bool ready() const = 0;
  // [admin] allow_clients of the running config: who may connect. Asked at
  // every accept, so a reload applies to the next admin connection.
  virtual const std::vector<Cidr>& admin_allow_clients() const = 0;
  // /metrics: every worker's metrics, and the process's own, to be added
  // up.
  virtual std::vector<const Metrics*> worker_metrics() const = 0;
  // /connections: gathers one JSON object per open exchange or tunnel from
  // every worker (each on its own thread) and calls `done` on the control
  // thread with the objects joined by commas (no enclosing brackets). With
  // `only_test`, only that test's exchanges (for /tests/ID).
  virtual void snapshot_connections(std::string only_test,
                                    std::function<void(std::string)> done) = 0;
  // /tests: what cutoff keeps per test id (test_registry.hpp).
  virtual TestRegistry& tests() = 0;

 protected:
  ~AdminSource() = default;
};

}  // namespace cutoff

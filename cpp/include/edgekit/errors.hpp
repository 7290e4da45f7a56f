// edgekit C++ runtime: the two kinds of error it raises.
#pragma once

#include <stdexcept>
#include <string>

namespace edgekit {

// The bundle cannot be used here: damaged, tampered, from a newer edgekit, or built for another
// runtime version or backend. The message says plainly what does not match and what to do.
// edgekit-run exits with 2 on it, like the Python CLI's UsageError.
class BundleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A step failed while running a bundle that passed its checks (the runtime could not compile the
// model, an inference call failed). edgekit-run exits with 1 on it.
class RuntimeFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace edgekit

#pragma once
// Typed exceptions thrown by the library. The CLI catches `Error` and prints its
// message as one line; everything else is a bug.
#include <stdexcept>
#include <string>

namespace powertrain {

/// Base of every exception the library throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Invalid user input: options, config files, specs, tables.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A file could not be read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

/// A dataset file is missing or malformed.
class DataError : public Error {
 public:
  using Error::Error;
};

/// An energy source failed while it was being read.
class SourceError : public Error {
 public:
  using Error::Error;
};

/// The results database failed or has an unexpected schema.
class StoreError : public Error {
 public:
  using Error::Error;
};

/// The user's training program broke the protocol of docs/external.md (a
/// malformed event, an epoch out of order), crashed, hung past a timeout or
/// ended without what a run needs. Fails that run, not the study.
class WorkloadError : public Error {
 public:
  using Error::Error;
};

}  // namespace powertrain

// The side channel on which MPI ranks tell each other about failures: its own communicator
// (a duplicate of the world), so notices never mix with collectives, shared by every group
// of the process. A rank waiting in a collective services it: it answers "where are you?"
// questions and turns a peer's failure report into RankFailure. It also keeps the process's
// first failure: after it, every group is broken. Private to the MPI process group.
#pragma once
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tessera/distributed/process_group.h"

namespace tessera::distributed {

class FaultChannel {
 public:
  FaultChannel(int rank, int size);
  ~FaultChannel();
  FaultChannel(const FaultChannel&) = delete;
  FaultChannel& operator=(const FaultChannel&) = delete;

  // Each group counts the collectives it has entered (its position) under an id that is
  // the same on every rank; "where are you?" names the group, and the answer is that count.
  int add_group(const std::atomic<uint64_t>* position);

  // Handles the notices that have arrived. Throws RankFailure on a peer's failure report.
  void service();
  // Sends `message` as this rank's failure report to every other rank.
  void report(const std::string& message);
  // After collective `position` (`what`) timed out: asks every other rank where it is, waits
  // up to `grace` for the answers, and returns the error naming the ranks that did not reach
  // the collective.
  RankFailure diagnose(int group, uint64_t position, const char* what,
                       std::chrono::milliseconds waited, std::chrono::milliseconds grace);

  // The first failure of the process, kept so that every later collective throws it.
  void record(const RankFailure& failure);
  bool failed();
  void throw_if_failed();

 private:
  enum Tag : int { kFailure = 101, kWhere = 102, kHere = 103 };
  struct Outgoing {
    std::vector<char> bytes;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  void send(int to, Tag tag, std::vector<char> bytes);
  // Receives one pending notice, if any: its source, tag and bytes.
  bool receive(int& source, int& tag, std::vector<char>& bytes);
  // Answers a question, throws on a failure report, or records an answer into `answers`.
  void handle(int source, int tag, const std::vector<char>& bytes, std::vector<int64_t>* answers,
              int asked_group);
  void drop_sent();

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_, size_;
  std::mutex mutex_;
  std::list<Outgoing> outbox_;  // sends in flight; their bytes must outlive them
  std::vector<const std::atomic<uint64_t>*> positions_;
  std::optional<RankFailure> failure_;
};

}  // namespace tessera::distributed

// The failure side channel of the MPI process group (see mpi_fault_channel.h).
#include "mpi_fault_channel.h"

#include <cstring>
#include <sstream>
#include <thread>

namespace tessera::distributed {
namespace {

// Questions and answers are two numbers: the group id and a position.
std::vector<char> encode(uint64_t group, uint64_t position) {
  uint64_t words[2] = {group, position};
  std::vector<char> bytes(sizeof words);
  std::memcpy(bytes.data(), words, sizeof words);
  return bytes;
}

bool decode(const std::vector<char>& bytes, uint64_t& group, uint64_t& position) {
  uint64_t words[2];
  if (bytes.size() != sizeof words) return false;
  std::memcpy(words, bytes.data(), sizeof words);
  group = words[0];
  position = words[1];
  return true;
}

}  // namespace

FaultChannel::FaultChannel(int rank, int size) : rank_(rank), size_(size) {
  MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

FaultChannel::~FaultChannel() {
  // Sends still in flight go to ranks that never took them: nothing is waiting for them.
  for (Outgoing& o : outbox_) {
    if (o.request != MPI_REQUEST_NULL) MPI_Request_free(&o.request);
  }
}

void FaultChannel::send(int to, Tag tag, std::vector<char> bytes) {
  Outgoing& o = outbox_.emplace_back();
  o.bytes = std::move(bytes);
  MPI_Isend(o.bytes.data(), static_cast<int>(o.bytes.size()), MPI_CHAR, to, tag, comm_, &o.request);
}

void FaultChannel::drop_sent() {
  for (auto it = outbox_.begin(); it != outbox_.end();) {
    int done = 0;
    MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
    it = done ? outbox_.erase(it) : std::next(it);
  }
}

bool FaultChannel::receive(int& source, int& tag, std::vector<char>& bytes) {
  int found = 0;
  MPI_Message message;
  MPI_Status status;
  // Matched probe and receive: safe when two threads of this rank service the channel.
  MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &found, &message, &status);
  if (!found) return false;
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  bytes.assign(static_cast<size_t>(count), 0);
  MPI_Mrecv(bytes.data(), count, MPI_CHAR, &message, MPI_STATUS_IGNORE);
  source = status.MPI_SOURCE;
  tag = status.MPI_TAG;
  return true;
}

int FaultChannel::add_group(const std::atomic<uint64_t>* position) {
  std::lock_guard<std::mutex> lock(mutex_);
  positions_.push_back(position);
  return static_cast<int>(positions_.size()) - 1;
}

void FaultChannel::handle(int source, int tag, const std::vector<char>& bytes,
                          std::vector<int64_t>* answers, int asked_group) {
  if (tag == kFailure) {
    RankFailure failure(
        {source}, str_cat("rank ", source, " failed: ", std::string(bytes.begin(), bytes.end())));
    if (!failure_) failure_ = failure;
    throw failure;
  }
  uint64_t group = 0, position = 0;
  if (!decode(bytes, group, position)) return;
  if (tag == kWhere && group < positions_.size()) {
    send(source, kHere, encode(group, positions_[group]->load()));
  }
  if (tag == kHere && answers && group == static_cast<uint64_t>(asked_group)) {
    (*answers)[static_cast<size_t>(source)] = static_cast<int64_t>(position);
  }
}

void FaultChannel::service() {
  std::lock_guard<std::mutex> lock(mutex_);
  drop_sent();
  int source = 0, tag = 0;
  std::vector<char> bytes;
  while (receive(source, tag, bytes)) handle(source, tag, bytes, nullptr, -1);
}

void FaultChannel::record(const RankFailure& failure) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_) failure_ = failure;
}

bool FaultChannel::failed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_.has_value();
}

void FaultChannel::throw_if_failed() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failure_) throw *failure_;
}

void FaultChannel::report(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (int r = 0; r < size_; ++r) {
    if (r != rank_) send(r, kFailure, std::vector<char>(message.begin(), message.end()));
  }
  // Small messages leave at once; wait a little for them, so that a rank exiting right
  // after this has told the others.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (!outbox_.empty() && std::chrono::steady_clock::now() < deadline) {
    drop_sent();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

RankFailure FaultChannel::diagnose(int group, uint64_t position, const char* what,
                                   std::chrono::milliseconds waited,
                                   std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<int64_t> answers(static_cast<size_t>(size_), -1);
  answers[static_cast<size_t>(rank_)] = static_cast<int64_t>(position);
  for (int r = 0; r < size_; ++r) {
    if (r != rank_) send(r, kWhere, encode(static_cast<uint64_t>(group), position));
  }
  auto deadline = std::chrono::steady_clock::now() + grace;
  auto all_answered = [&] {
    for (int64_t a : answers) {
      if (a < 0) return false;
    }
    return true;
  };
  while (!all_answered() && std::chrono::steady_clock::now() < deadline) {
    int source = 0, tag = 0;
    std::vector<char> bytes;
    if (receive(source, tag, bytes)) {
      handle(source, tag, bytes, &answers, group);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  std::vector<int> missing;
  std::ostringstream detail;
  for (int r = 0; r < size_; ++r) {
    int64_t at = answers[static_cast<size_t>(r)];
    if (r == rank_ || at >= static_cast<int64_t>(position)) continue;
    missing.push_back(r);
    detail << "; rank " << r
           << (at < 0 ? " did not answer (dead, hung, or busy outside collectives)"
                      : str_cat(" is waiting at an earlier collective (#", at, ")"));
  }
  std::ostringstream message;
  message << what << " (collective #" << position << " of rank " << rank_
          << ") did not complete within " << waited.count() / 1000.0 << " s";
  if (missing.empty()) {
    message << "; every rank reached it, so the transport itself is stuck";
  } else {
    message << detail.str();
  }
  return RankFailure(missing, message.str());
}

}  // namespace tessera::distributed

// The MPI process group (Debian's OpenMPI): every process started by mpirun is one rank of
// the world group. Launch with `mpirun -np N program` (add `--oversubscribe` to run more
// ranks than cores, `--allow-run-as-root` as root, `--hostfile FILE` for several machines).
#pragma once
#include <memory>

#include "tessera/distributed/process_group.h"

namespace tessera::distributed {

// The world group, initializing MPI on first use (finalized at exit). A program not
// started by mpirun is a group of one.
std::shared_ptr<ProcessGroup> mpi_world();

}  // namespace tessera::distributed

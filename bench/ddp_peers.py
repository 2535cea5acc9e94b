"""PyTorch's DistributedDataParallel (gloo, CPU) on the same work as bench_distributed train:
the reference CNN on Fashion-MNIST, Adam, a global batch split over the ranks, one thread
per rank. Prints the same kind of line. Run by bench/run_distributed.sh."""
import argparse
import os
import time

import numpy as np

from train_peers import load, torch_model


def worker(rank, ranks, args, port):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(args.threads)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    x, y = load(args.data_dir, "train")
    torch.manual_seed(42)
    model = torch.nn.parallel.DistributedDataParallel(torch_model("cnn"))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = np.random.default_rng(42).permutation(len(x))[rank::ranks]
    per_rank = args.batch // ranks
    warmup = 10
    for step in range(warmup + args.steps):
        if step == warmup:
            dist.barrier()
            start = time.perf_counter()
        at = (step * per_rank) % (len(order) - per_rank)
        idx = order[at:at + per_rank]
        xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        print(f"torch_ddp ranks={ranks} threads={args.threads} "
              f"images_per_s={args.steps * args.batch / seconds:.1f}", flush=True)
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    import torch.multiprocessing as mp
    port = 29500 + os.getpid() % 1000
    mp.spawn(worker, args=(args.ranks, args, port), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    main()

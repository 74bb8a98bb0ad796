#!/bin/bash
# One node's share of a multi-node t2i run: `accelerate launch` with this node's rank and the main node's address.
# Run once per node by scripts/slurm/t2i.sbatch (srun sets SLURM_NNODES and SLURM_NODEID); by hand on each node of a
# cluster without SLURM, with the same variables:
#   SLURM_NNODES=2 SLURM_NODEID=0 MAIN_ADDR=node0 bash scripts/slurm/t2i_node.sh --config ...   # on node0
#   SLURM_NNODES=2 SLURM_NODEID=1 MAIN_ADDR=node0 bash scripts/slurm/t2i_node.sh --config ...   # on node1
# Optional: MAIN_PORT (29500), GPUS_PER_NODE (default: the GPUs nvidia-smi lists), ACCELERATE_CONFIG (an accelerate
# config file, e.g. configs/accelerate/fsdp.yaml; default: DDP), ACCELERATE (the accelerate executable).
# THREADS_PER_PROCESS (intra-op threads). CPU processes instead of GPUs (tests): ACCELERATE_USE_CPU=1 GPUS_PER_NODE=1.
set -euo pipefail
: "${SLURM_NNODES:?set to the number of nodes}" "${SLURM_NODEID:?set to the rank of this node, 0 on the main node}"
: "${MAIN_ADDR:?set to the address of node 0}"
GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi -L | wc -l)}
# on SIGTERM the launcher passes it on and waits this long for the checkpoint before killing (torch's default: 30 s)
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-100}
ACCELERATE=${ACCELERATE:-accelerate}
if [ -n "${ACCELERATE_CONFIG:-}" ]; then
    mode=(--config_file "$ACCELERATE_CONFIG")
else
    mode=(--multi_gpu --mixed_precision no --dynamo_backend no)
fi
threads=()
[ -n "${THREADS_PER_PROCESS:-}" ] && threads=(--num_cpu_threads_per_process "$THREADS_PER_PROCESS")
exec "$ACCELERATE" launch "${mode[@]}" \
    --num_machines "$SLURM_NNODES" --machine_rank "$SLURM_NODEID" \
    --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \
    --main_process_ip "$MAIN_ADDR" --main_process_port "${MAIN_PORT:-29500}" \
    --rdzv_backend static --same_network "${threads[@]}" \
    t2i/train.py "$@"

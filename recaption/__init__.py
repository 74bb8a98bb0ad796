"""Resumable, fault-tolerant batch recaptioning of webdataset shards (uses captioner for the model).

    python -m recaption run --config configs/recaption/toy.yaml --input 'DIR/{00000..00099}.tar' --output OUT
    torchrun --nproc_per_node 8 -m recaption run ...        # same command, many workers (also accelerate, srun)

Modules, in the order data flows through them:
    config       the settings tree (`--help` lists every one)
    shards       input lists, shard names, tar reading with dotted keys and truncation detection
    decode       image decoding + fitting to the Qwen grid in worker processes (bounded, ordered)
    engine       one shard: batches by (task type, visual tokens), generation, error/loop/empty checks
    repetition   the repetition-loop detector
    outputs      sidecar / rewrite / stats writers (atomic), output names
    fingerprint  what makes captions differ; refusal of mismatched reruns
    leases       shard claims between workers (O_EXCL lease files, heartbeat, reclaim)
    progress     progress bar and job summary
    run          the entry point: one worker's loop over shards
"""

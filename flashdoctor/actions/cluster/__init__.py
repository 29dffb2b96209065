"""Cluster preflight: `flashdoctor check --distributed` runs the check (and optionally the smoke test) on
every rank of an existing launcher (torchrun, Slurm srun) and reports the cluster in one table.

The flow mirrors the single-machine check:

- ``launch``: who am I in the job (rank, world size, local rank, rendezvous address), read from the
  launcher's environment variables; which GPU is mine. Pure.
- ``rank``: one rank's work — probe this node and this rank's GPU, run the checks (and the smoke
  hook) — returning a JSON-able rank document.
- ``protocol``: the join / done / plan / outcome exchange over a key-value store, with the bounded
  waits that name the ranks that never arrived. Written against small Store / Collective
  interfaces, so it is tested with threads and an in-process store.
- ``torch_glue``: the only module that imports torch.distributed — the TCPStore and the gloo
  process group that carries the rank documents to rank 0.
- ``report``: the cluster report value (per-rank verdicts, drift across ranks, cluster findings,
  exit code) built from fed rank documents, and its JSON form. Pure.
- ``run``: the wiring for the CLI; ``flashdoctor.render.cluster`` renders the report for humans.
"""

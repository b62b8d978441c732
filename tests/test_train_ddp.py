"""Two CPU processes under torchrun (gloo): one history, DDP-synchronised weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from zhbert.training.checkpoint import list_checkpoints


def test_torchrun_two_processes_on_cpu(tiny_corpus, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "main_train.py", "--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
           "--set", "run.max_steps=6", "--set", "run.save_interval=3", "--set",
           "run.eval_interval=3", "--set", "run.tensorboard=true", "--run-dir", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    h = json.loads((run / "training_history.json").read_text())
    meta = h["meta"]
    assert meta["world_size"] == 2 and meta["global_batch"] == 2 * 8 * 2
    assert meta["process_group"] == "gloo"
    assert h["steps"] == [2, 4, 6] and h["eval_steps"] == [3, 6]
    # both ranks' tokens are counted: 6 steps x 2 micro-batches x 8 x 32 tokens x 2 ranks
    assert h["tokens_seen"][-1] == 6 * 2 * 8 * 32 * 2
    assert [s for s, _ in list_checkpoints(run)] == [3, 6]
    assert (run / "final" / "config.json").is_file()
    assert proc.stdout.count("resolved config") == 1  # only rank 0 talks
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1  # rank 0 only


def test_torchrun_time_budget_ranks_agree_where_to_stop(tiny_corpus, tmp_path):
    """Under a binding wall-clock budget both ranks stop at the same step (rank 0 plans for all;
    a disagreement would leave one rank waiting in a collective until the timeout)."""
    run = tmp_path / "ddp_budget"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "main_train.py", "--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
           "--set", "run.max_steps=100000", "--set", "run.time_budget_s=4",
           "--set", "run.save_interval=100000", "--set", "run.eval_interval=100000",
           "--set", "run.milestones=[]",
           "--set", "run.log_interval=5", "--set", "run.export_final=false",
           "--set", "run.tensorboard=false", "--run-dir", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    h = json.loads((run / "training_history.json").read_text())
    last = h["steps"][-1]
    assert 0 < last < 100000 and h["eval_steps"] == [last]
    assert h["meta"]["time_budget"]["planned_steps"] == last
    assert [s for s, _ in list_checkpoints(run)] == [last]


def test_torchrun_one_process_runs_the_process_group_path(tiny_corpus, tmp_path):
    """``torchrun --nproc_per_node 1`` starts a process group and DDP (the NCCL path on a GPU),
    not the plain single-process path."""
    run = tmp_path / "ddp1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "main_train.py", "--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
           "--set", "run.max_steps=4", "--set", "run.export_final=false", "--run-dir", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((run / "training_history.json").read_text())["meta"]
    assert meta["world_size"] == 1 and meta["process_group"] == "gloo"
    plain = tmp_path / "plain"
    subprocess.run([sys.executable, "main_train.py", "--preset", "smoke", "--set",
                    f"data.corpus_dir={tiny_corpus}", "--set", "run.max_steps=2", "--set",
                    "run.export_final=false", "--run-dir", str(plain)], cwd=root, env=env,
                   check=True, capture_output=True, timeout=300)
    assert json.loads((plain / "training_history.json").read_text())["meta"][
        "process_group"] is None

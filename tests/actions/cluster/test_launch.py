"""Launcher environment -> rank, rendezvous, GPU; fed mappings only."""

from __future__ import annotations

import pytest

from flashdoctor.actions.cluster.launch import (
    assign_device,
    first_slurm_host,
    launch_from_environ,
    parse_target_for_rank,
    rank_target,
    visible_tokens,
)
from flashdoctor.errors import UsageError

TORCHRUN = {
    "RANK": "5",
    "WORLD_SIZE": "8",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "4",
    "GROUP_RANK": "1",
    "MASTER_ADDR": "node01",
    "MASTER_PORT": "29500",
    "TORCHELASTIC_RUN_ID": "job42",
    "TORCHELASTIC_RESTART_COUNT": "2",
    "TORCHELASTIC_USE_AGENT_STORE": "True",
}


def test_torchrun_environment() -> None:
    info = launch_from_environ(TORCHRUN)
    assert (info.launcher, info.rank, info.world_size, info.local_rank) == ("torchrun", 5, 8, 1)
    assert (info.node_rank, info.local_world_size) == (1, 4)
    assert info.rendezvous == "node01:29500"
    assert info.agent_store is True
    assert info.run_id == "job42.2"  # a restarted group gets fresh keys in the agent's store


def test_plain_env_rendezvous_hosts_its_own_store() -> None:
    env = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}
    info = launch_from_environ(env)
    assert (info.launcher, info.agent_store, info.local_rank, info.run_id) == ("env", False, 0, "env.0")


def test_torchrun_ranks_win_over_slurm_under_srun_torchrun() -> None:
    env = {**TORCHRUN, "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "x[1-2]"}
    info = launch_from_environ(env)
    assert (info.launcher, info.rank, info.world_size) == ("torchrun", 5, 8)


def test_slurm_environment_with_nodelist_and_derived_port() -> None:
    env = {
        "SLURM_PROCID": "3",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "3",
        "SLURM_NODEID": "0",
        "SLURM_JOB_ID": "123456",
        "SLURM_STEP_ID": "0",
        "SLURM_STEP_NODELIST": "gpu[07-08]",
        "SLURM_JOB_NODELIST": "gpu[01-16]",
    }
    info = launch_from_environ(env)
    assert (info.launcher, info.rank, info.world_size, info.local_rank, info.node_rank) == (
        "slurm",
        3,
        8,
        3,
        0,
    )
    assert info.master_addr == "gpu07"  # the step's first node, not the job's
    assert info.master_port == 15000 + 123456 % 10000
    assert info.run_id == "slurm-123456.0"
    assert info.agent_store is False


def test_slurm_master_addr_and_port_override() -> None:
    env = {
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "2",
        "SLURM_JOB_NODELIST": "a1",
        "MASTER_ADDR": "head",
        "MASTER_PORT": "40000",
    }
    info = launch_from_environ(env)
    assert info.rendezvous == "head:40000"


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [
        ("gpu[07-09,12],login1", "gpu07"),
        ("node001", "node001"),
        ("a1,b[2-3]", "a1"),
        ("rack[1-2]-n[001-004]", "rack1-n001"),
        ("x[5,7-9]", "x5"),
        ("dgx-a100-[0003-0010]", "dgx-a100-0003"),
        ("", None),
        ("bad[", None),
    ],
)
def test_first_slurm_host(nodelist: str, first: str | None) -> None:
    assert first_slurm_host(nodelist) == first


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "needs a launcher"),
        ({"RANK": "0"}, "RANK and WORLD_SIZE"),
        ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT"),
        (
            {"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
            "RANK='x' is not an integer",
        ),
        ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "outside the world"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"}, "not a TCP port"),
        ({"SLURM_PROCID": "0"}, "SLURM_NTASKS"),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "1"}, "no rendezvous host"),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "n1"}, "no rendezvous port"),
    ],
)
def test_bad_launcher_environment_is_a_usage_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        launch_from_environ(env)


# -- GPU of a rank -------------------------------------------------------------------------------------
def test_local_rank_picks_its_gpu() -> None:
    assert assign_device(2, None, 4).visible == "2"
    assert assign_device(0, None, 4).visible == "0"


def test_local_rank_indexes_cuda_visible_devices() -> None:
    assert assign_device(1, "4,5,6,7", 4).visible == "5"
    assert assign_device(1, "GPU-aaa,GPU-bbb", 2).visible == "GPU-bbb"


def test_a_process_that_sees_one_gpu_owns_it_whatever_its_local_rank() -> None:
    # srun --gpus-per-task=1: SLURM_LOCALID=3, CUDA_VISIBLE_DEVICES=3 (one entry).
    assert assign_device(3, "3", 1).visible == "3"


def test_more_ranks_than_gpus_leaves_a_rank_without_one() -> None:
    a = assign_device(5, None, 4)
    assert a.visible is None and a.note is not None and "local rank 5" in a.note and "4 visible" in a.note


def test_no_gpu_no_assignment_no_note() -> None:
    a = assign_device(3, None, 0)
    assert (a.visible, a.note, a.has_gpu) == (None, None, False)


def test_visible_tokens_stop_like_the_cuda_runtime() -> None:
    assert visible_tokens("0,1,,2", 3) == ["0", "1"]
    assert visible_tokens("1,0", 1) == ["1"]  # only one valid device was found by the probe
    assert visible_tokens(None, 2) == ["0", "1"]


# -- target per rank -----------------------------------------------------------------------------------
def test_parse_target_for_rank() -> None:
    assert parse_target_for_rank(["1=a.json", "3=dir/b=c.json"]) == {1: "a.json", 3: "dir/b=c.json"}


@pytest.mark.parametrize("bad", ["a.json", "x=a.json", "1=", "=a.json"])
def test_parse_target_for_rank_rejects(bad: str) -> None:
    with pytest.raises(UsageError, match="RANK=FILE"):
        parse_target_for_rank([bad])


def test_parse_target_for_rank_rejects_a_rank_twice() -> None:
    with pytest.raises(UsageError, match="twice"):
        parse_target_for_rank(["1=a", "1=b"])


def test_rank_target_precedence() -> None:
    per = {1: "one.json"}
    assert rank_target(1, per, "all.json", {"FLASHDOCTOR_TARGET": "env.json"}) == "one.json"
    assert rank_target(2, per, "all.json", {"FLASHDOCTOR_TARGET": "env.json"}) == "env.json"
    assert rank_target(2, per, "all.json", {}) == "all.json"
    assert rank_target(2, per, None, {"FLASHDOCTOR_TARGET": " "}) is None

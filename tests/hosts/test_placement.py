"""Placement (pure), the hosts of the config and of ``--hosts``, and how a remote worker is
shown and attached to; no ssh needed."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from protocol.hosts import HostSpec
from protocol.plan import Plan
from protocol.state import RunState, TaskRecord
from runner.config import load_config
from runner.control import attach_argv
from runner.dashboard import status_table
from runner.errors import UsageError
from runner.hosts.layout import Layout
from runner.hosts.placement import choose, place
from runner.hosts.remote import path_mapper
from runner.launch import RunOptions, configure, select_hosts
from runner.simulate import as_json, simulate
from tests.runner.runs import swarm, task, write_plan

LOCAL = HostSpec(name="local", slots=1)
A = HostSpec(name="a", ssh="build-a", root="/srv/swarm", slots=2)
B = HostSpec(name="b", ssh="me@build-b", root="/srv/swarm", slots=2)


class Case(t.NamedTuple):
    test_id: str
    used: dict[str, int]
    current: str
    down: tuple[str, ...]
    expected: str


CASES = [
    Case("most-free-slots", {}, "", (), "a"),
    Case("ties-to-the-first-listed", {"a": 1, "b": 1}, "", (), "local"),
    Case("stays-where-it-was", {"local": 0, "a": 2}, "b", (), "b"),
    Case("moves-when-its-host-is-full", {"b": 2}, "b", (), "a"),
    Case("never-on-a-down-host", {}, "a", ("a",), "b"),
    Case("busiest-up-host-when-all-full", {"local": 1, "a": 2, "b": 2}, "", ("a",), "local"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_choose(case: Case) -> None:
    got = choose([LOCAL, A, B], case.used, current=case.current, down=case.down)
    assert got == case.expected


def _state(**tasks: tuple[str, str]) -> RunState:
    records = {
        tid: TaskRecord(id=tid, state=st, host=host, attempt=1 if st != "pending" else 0)  # type: ignore[arg-type]
        for tid, (st, host) in tasks.items()
    }
    return RunState(run_id="r1", hosts=(LOCAL, A, B), tasks=records, task_order=tuple(records))


def test_place_counts_only_tasks_holding_a_slot() -> None:
    state = _state(
        T1=("running", "a"), T2=("merged", "b"), T3=("pending", ""), T4=("running", "local")
    )
    assert place(state, "T3") == "b"  # a has one free, b two (its merged task holds none)
    assert place(RunState(run_id="r1"), "T1") == ""  # no hosts: nothing recorded


def test_the_config_names_the_file_and_key_of_a_bad_host(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".swarm.toml").write_text('[[hosts]]\nname = "a"\nssh = "build-a"\n')
    with pytest.raises(UsageError, match=r"\.swarm\.toml: hosts: .*host 'a' needs 'root'"):
        load_config(tmp_path)
    (tmp_path / ".swarm.toml").write_text('[[hosts]]\nname = "a"\nssh = "x"\nroot = "rel"\n')
    with pytest.raises(UsageError, match=r"hosts\[0\]\.root: .*absolute path"):
        load_config(tmp_path)
    twice = '[[hosts]]\nname = "a"\nssh = "x"\nroot = "/r"\n'
    (tmp_path / ".swarm.toml").write_text(twice + twice)
    with pytest.raises(UsageError, match="listed twice"):
        load_config(tmp_path)


def test_hosts_are_local_and_every_configured_one_unless_named() -> None:
    assert [h.name for h in select_hosts([A, B], None, local_slots=3)] == ["local", "a", "b"]
    assert select_hosts([A, B], None, local_slots=3)[0].slots == 3
    assert [h.name for h in select_hosts([A, B], ["b"], local_slots=3)] == ["b"]
    with pytest.raises(UsageError, match=r"--hosts: no host 'c' in the config"):
        select_hosts([A, B], ["c"], local_slots=3)


def test_a_run_with_remote_hosts_uses_clones_and_the_sum_of_the_slots(
    git_repo: pathlib.Path,
) -> None:
    (git_repo / ".swarm.toml").write_text(
        '[[hosts]]\nname = "a"\nssh = "build-a"\nroot = "/srv/swarm"\nslots = 3\n'
    )
    plan = Plan.model_validate({"tasks": [{"id": "A"}]})
    _, options = configure(git_repo, plan, RunOptions(hosts=("local", "a"), max_workers=None))
    assert options.isolation == "clone"
    assert [h.name for h in options.host_specs] == ["local", "a"]
    assert options.max_workers == 5 + 3
    _, only_local = configure(git_repo, plan, RunOptions(hosts=("local",)))
    assert only_local.host_specs == () and only_local.isolation == "worktree"
    with pytest.raises(UsageError, match="sandbox does not work with remote hosts"):
        configure(git_repo, plan, RunOptions(hosts=("a",), isolation="sandbox"))


def test_an_unknown_host_on_the_command_line_is_a_usage_error(git_repo: pathlib.Path) -> None:
    plan = write_plan(git_repo.parent, [task("A", ["a.txt"], [])])
    result = swarm("run", str(plan), "--repo", str(git_repo), "--hosts", "nowhere")
    assert result.exit_code == 2, result.output
    assert "no host 'nowhere' in the config" in result.output


def test_attach_to_a_remote_worker_is_ssh_with_a_tty_into_its_hosts_tmux() -> None:
    state = _state(T1=("running", "a")).model_copy(update={"tmux_socket": "swarm-x"})
    record = state.tasks["T1"].model_copy(update={"session": "swarm-r1-T1"})
    state = state.model_copy(update={"tasks": {"T1": record}})
    argv = attach_argv(state, "T1")
    assert argv[0] == "ssh" and "-t" in argv and "build-a" in argv
    socket = Layout.of("/srv/swarm").socket
    assert argv[-1] == f"tmux -L {socket} attach-session -r -t =swarm-r1-T1"
    assert " -r " not in attach_argv(state, "T1", rw=True)[-1]


def test_status_shows_a_remote_workers_host() -> None:
    from rich.console import Console

    state = _state(T1=("running", "a"), T2=("running", "local"))
    tasks = {k: r.model_copy(update={"session": f"swarm-r1-{k}"}) for k, r in state.tasks.items()}
    console = Console(width=120, record=True)
    console.print(status_table(state.model_copy(update={"tasks": tasks}), width=120))
    text = console.export_text()
    assert "a:swarm-r1-T1" in text and "local:" not in text


def test_simulate_places_tasks_on_hosts_as_the_mayor_does() -> None:
    tasks = [{"id": f"T{i}", "effort": "S", "files": [f"t{i}.txt"]} for i in range(5)]
    plan = Plan.model_validate({"tasks": tasks})
    sim = simulate(plan, workers=5, hosts=[LOCAL, A, B])
    hosts = [task.host for task in sim.tasks]
    assert hosts == ["a", "b", "local", "a", "b"]
    assert as_json(sim)["tasks"][0]["host"] == "a"


def test_local_paths_become_remote_ones_longest_first() -> None:
    mapped = path_mapper({"/x/swarm": "/r/box/swarm", "/x/swarm/bin": "/r/bin", "/x/wt": "/r/w"})
    assert (
        mapped("/x/swarm/bin/swarm /x/swarm/mail /x/wt/T1")
        == "/r/bin/swarm /r/box/swarm/mail /r/w/T1"
    )


def test_ssh_control_sockets_never_go_into_a_folder_someone_else_made(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a shared /tmp another user can make ``swarm-ssh-<uid>`` first (open to all): a master
    socket there could be swapped for theirs. Refused with the fix; a private one is used."""
    import os
    import tempfile

    from runner.hosts.ssh import control_dir

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    planted = tmp_path / f"swarm-ssh-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(UsageError, match=r"not a private folder of yours .* mode 777"):
        control_dir()
    planted.chmod(0o700)
    assert control_dir() == planted

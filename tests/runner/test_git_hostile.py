"""Git calls a worker cannot hijack (issue 13, "Hooks"): worktrees share ``.git``, so a worker
can plant hooks, fsmonitor, filters, merge drivers and signing programs there. None of them
may run inside runner.git's calls; and a change is visible in the repository fingerprint."""

from __future__ import annotations

import os
import pathlib
import subprocess
import typing as t

import pytest

from protocol.manifest import escaping_symlinks, parse_raw_diff
from runner import git as g
from runner import gitguard
from runner.errors import CommandError
from tests.conftest import GIT_ENV, git

HOOKS: t.Final = (
    "post-checkout",
    "post-merge",
    "post-commit",
    "pre-commit",
    "pre-merge-commit",
    "commit-msg",
    "prepare-commit-msg",
    "post-rewrite",
    "reference-transaction",
    "pre-auto-gc",
)


class Planted(t.NamedTuple):
    repo: pathlib.Path
    worker: pathlib.Path
    marker: pathlib.Path

    def ran(self) -> list[str]:
        return self.marker.read_text().splitlines() if self.marker.exists() else []


def commit_file(repo: pathlib.Path, path: str, content: str) -> str:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"edit {path}")
    return git(repo, "rev-parse", "HEAD")


def as_worker(worker: pathlib.Path, script: str) -> None:
    """Run ``script`` with sh inside the worker's worktree, as an agent in a pane would."""
    subprocess.run(
        ["sh", "-ec", script],
        cwd=worker,
        check=True,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
    )


PLANT: t.Final = r"""
common=$(git rev-parse --git-common-dir)
evil() {  # evil NAME [cat]: a script that records that it ran (and passes stdin through)
  printf '#!/bin/sh\necho "%s $*" >> "%s"\n%s\n' "$1" "$MARKER" "${2:-true}" > "$EVIL/$1"
  chmod +x "$EVIL/$1"
}
mkdir -p "$EVIL"
for hook in $HOOKS; do evil "$hook"; cp "$EVIL/$hook" "$common/hooks/$hook"; done
evil fsmonitor; evil clean cat; evil smudge cat; evil process; evil gpg; evil mergedriver
git config core.fsmonitor "$EVIL/fsmonitor"
git config filter.evil.clean "$EVIL/clean"
git config filter.evil.smudge "$EVIL/smudge"
git config filter.evil.required true
git config merge.evil.driver "$EVIL/mergedriver %O %A %B"
git config commit.gpgSign true
git config gpg.program "$EVIL/gpg"
git config merge.verifySignatures true
git config log.showSignature true
git config core.logAllRefUpdates false
printf '* filter=evil merge=evil\n' > "$common/info/attributes"
"""


@pytest.fixture
def planted(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> Planted:
    """A repository with one worker worktree whose agent planted every kind of code git runs
    by itself: hooks (also through core.hooksPath), fsmonitor, filter and merge drivers (via
    info/attributes, so even a clean checkout has them), signing programs."""
    repo = git_repo
    commit_file(repo, "notes.txt", "base\n")
    worker = tmp_path / "worker"
    git(repo, "worktree", "add", "-q", "-b", "swarm/r1/T1", str(worker))
    marker = tmp_path / "ran.log"
    evil = tmp_path / "evil"
    env = f"MARKER='{marker}' EVIL='{evil}' HOOKS='{' '.join(HOOKS)}'\n"
    as_worker(worker, env + "export MARKER EVIL HOOKS\n" + PLANT)
    return Planted(repo, worker, marker)


def test_planted_code_is_live_for_plain_git(planted: Planted) -> None:
    """The fixture is real: an ordinary git command runs the planted code."""
    subprocess.run(
        ["git", "status"], cwd=planted.repo, env={**os.environ, **GIT_ENV}, capture_output=True
    )
    assert planted.ran()


def test_no_planted_code_runs_during_runner_git_calls(
    planted: Planted, tmp_path: pathlib.Path
) -> None:
    repo, worker = planted.repo, planted.worker
    base = g.head_sha(repo)
    # the worker's own work, committed by the runner's helpers (scripted agent path)
    (worker / "notes.txt").write_text("worker\n")
    work = g.commit_all(worker, "worker edit")
    assert work is not None
    # what the mayor, the arbiter, land and clean do
    integration = tmp_path / "integration"
    g.worktree_add(repo, integration, "swarm/r1/integration", base)
    assert (integration / "notes.txt").read_text() == "base\n"  # no smudge filter ran
    assert g.is_clean(integration)
    assert gitguard.dirty_paths(integration) == []  # the arbiter's uncommitted-work check
    gitguard.dirty_paths(worker)
    assert g.changed_files(repo, base, work) == ["notes.txt"]
    assert g.merge_tree_conflicts(repo, base, work) == []
    merged = g.merge_no_ff(integration, "swarm/r1/T1", "swarm(T1)")
    g.reset_hard(integration, base)
    g.merge_squash(integration, "swarm/r1/T1", "squash T1")
    g.squash_onto(integration, base, merged, "squash again")
    g.update_ref(repo, "refs/swarm/test", merged)
    g.log_subjects(repo, base, merged)
    g.worktree_remove(repo, integration, force=True)
    g.create_branch(repo, "landing", base)
    g.worktree_add_existing(repo, tmp_path / "landing", "landing")
    g.merge_ff_only(tmp_path / "landing", merged)
    g.merge_ff_only(repo, merged)  # swarm land: the user's checkout
    gitguard.symlink_targets(repo, merged)
    assert planted.ran() == []


def test_a_planted_merge_driver_is_a_conflict_not_a_resolution(planted: Planted) -> None:
    repo, worker = planted.repo, planted.worker
    (repo / "notes.txt").write_text("mayor side\n")
    integration_head = g.commit_all(repo, "mayor side")
    assert integration_head is not None
    (worker / "notes.txt").write_text("worker side\n")
    g.commit_all(worker, "worker edit")
    assert g.merge_tree_conflicts(repo, integration_head, "swarm/r1/T1") == ["notes.txt"]
    with pytest.raises(g.MergeConflict) as info:
        g.merge_no_ff(repo, "swarm/r1/T1", "swarm(T1)")
    assert info.value.files == ("notes.txt",)
    assert g.head_sha(repo) == integration_head and g.is_clean(repo)
    assert planted.ran() == []


def test_hooks_path_in_config_does_not_run_either(planted: Planted, tmp_path: pathlib.Path) -> None:
    hooks = tmp_path / "elsewhere"
    hooks.mkdir()
    hook = hooks / "post-checkout"
    hook.write_text(f"#!/bin/sh\necho elsewhere >> '{planted.marker}'\n")
    hook.chmod(0o755)
    as_worker(planted.worker, f"git config core.hooksPath '{hooks}'")
    g.worktree_add(planted.repo, tmp_path / "w2", "swarm/r1/T2", "HEAD")
    assert planted.ran() == []


def test_reflogs_stay_on_even_if_a_worker_turns_them_off(planted: Planted) -> None:
    repo = planted.repo
    g.create_branch(repo, "kept-log", "HEAD")
    assert gitguard.reflog_commits(gitguard.branch_reflog(repo, "kept-log")) == [g.head_sha(repo)]


def test_fingerprint_names_what_changed(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    repo = git_repo
    before = gitguard.repo_fingerprint(repo)
    assert gitguard.repo_fingerprint(repo) == before
    assert gitguard.fingerprint_changes(before, before) == []
    worker = tmp_path / "worker"
    git(repo, "worktree", "add", "-q", "-b", "w", str(worker))
    as_worker(
        worker,
        'h=$(git rev-parse --git-common-dir)/hooks/post-merge; printf "#!/bin/sh\\n" > "$h"\n'
        'chmod +x "$h"; git config filter.x.smudge "rm -rf ~"',
    )
    after = gitguard.repo_fingerprint(repo)
    changes = gitguard.fingerprint_changes(before, after)
    common = g.common_dir(repo)
    assert f"hook {common / 'hooks' / 'post-merge'} was added" in changes
    assert f"config file {common / 'config'} changed" in changes
    assert "the repository's config changed" in changes
    (common / "hooks" / "post-merge").chmod(0o644)
    assert gitguard.fingerprint_changes(after, gitguard.repo_fingerprint(repo)) == [
        f"hook {common / 'hooks' / 'post-merge'} became plain"
    ]


def test_fingerprint_follows_included_config(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    extra = tmp_path / "extra.cfg"
    extra.write_text("[user]\n\tname = a\n")
    git(git_repo, "config", "include.path", str(extra))
    before = gitguard.repo_fingerprint(git_repo)
    assert f"config:{extra}" in before
    extra.write_text("[core]\n\tfsmonitor = /tmp/x\n")
    changes = gitguard.fingerprint_changes(before, gitguard.repo_fingerprint(git_repo))
    assert f"config file {extra} changed" in changes


def test_escaping_symlinks_in_a_real_commit(git_repo: pathlib.Path) -> None:
    repo = git_repo
    (repo / "src" / "sub").mkdir()
    links = {
        "src/ssh": "../../.ssh",
        "src/passwd": "/etc/passwd",
        "src/readme": "../README.md",
        "src/sub/up": "..",
        "src/sub/out": "up/../..",
        "src/hooks": "../.git/hooks",
    }
    for path, target in links.items():
        (repo / path).symlink_to(target)
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    raw = subprocess.run(
        ["git", "diff", "--raw", "-z", "--no-renames", base, "HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert {path for mode, path in parse_raw_diff(raw) if mode == "120000"} == set(links)
    found = gitguard.symlink_targets(repo, "HEAD")
    assert found == links
    escaping = {e.path for e in escaping_symlinks(found)}
    assert escaping == {"src/ssh", "src/passwd", "src/sub/out", "src/hooks"}
    # the verdict agrees with the file system for every link that stays inside
    root = repo.resolve()
    for path in set(links) - escaping:
        assert (repo / path).resolve().is_relative_to(root)
    for path in escaping:
        resolved = (repo / path).resolve()
        assert not resolved.is_relative_to(root) or ".git" in resolved.parts


def test_a_deleted_worktree_is_a_clear_command_error(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """A worker that deletes its worktree after offering: git's answer names the directory
    (was: exit 127 'git: command not found'), so the arbiter can refuse with a reason."""
    worker = tmp_path / "gone"
    git(git_repo, "worktree", "add", "-q", "-b", "gone", str(worker))
    subprocess.run(["rm", "-rf", str(worker)], check=True)
    with pytest.raises(CommandError, match="no such directory") as info:
        g.head_sha(worker)
    assert info.value.returncode == 128


def test_a_driver_planted_after_the_config_was_read_is_still_neutralised(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The config keys are cached per repository by the stat of its config files: a worker
    that plants a filter after the runner's last look is seen at the next content call."""
    repo = git_repo
    commit_file(repo, "notes.txt", "base\n")
    worker = tmp_path / "worker"
    git(repo, "worktree", "add", "-q", "-b", "swarm/r1/T1", str(worker))
    assert g.is_clean(worker) and g.is_clean(repo)  # both configs read (and cached) now
    marker, evil = tmp_path / "ran.log", tmp_path / "evil"
    env = f"MARKER='{marker}' EVIL='{evil}' HOOKS='{' '.join(HOOKS)}'\n"
    as_worker(worker, env + "export MARKER EVIL HOOKS\n" + PLANT)
    (worker / "notes.txt").write_text("worker\n")
    assert g.commit_all(worker, "worker edit") is not None
    integration = tmp_path / "integration"
    g.worktree_add(repo, integration, "swarm/r1/integration", g.head_sha(repo))
    g.merge_no_ff(integration, "swarm/r1/T1", "swarm(T1)")
    assert g.is_clean(integration)
    assert Planted(repo, worker, marker).ran() == []

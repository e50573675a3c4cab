"""The README's promise: its two commands for a fresh machine are what CI runs (its examples live in docs/)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    commands = [b.strip() for b in code_blocks("bash")]
    test_cmd = next(c for c in commands if "pytest" in c)
    main_cmd = next(c for c in commands if "regkit compare" in c)
    assert "pip install" in main_cmd and "pip install" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_the_readme_has_exactly_the_two_commands_and_the_docs_repeat_them():
    commands = [b.strip() for b in code_blocks("bash")]
    assert len(commands) == 2
    assert commands[0] == 'pip install "torch==2.13.0" -e . && regkit compare --methods mi,mind,attreg --init 8mm'
    start = (ROOT / "docs" / "getting-started.md").read_text()
    assert all(f"```bash\n{c}\n```" in start for c in commands)

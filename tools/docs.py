"""`make docs`: refresh every generated block in docs/ from its source, so prose and code never
disagree. `python -m tools.docs --check` lists stale blocks instead (the tests run it).

A generated block in a Markdown page looks like

    <!-- BEGIN code step4_channel_layer_groups/chat/consumers.py#ChatConsumer.connect -->
    ...whatever the generator writes...
    <!-- END -->

Kinds:
  code PATH[#NAME]   a file of the repository, or one Python function/class/assignment in it
  diff N..M [FILE]   the change from stage N to stage M (one file of it, with FILE)
  tree N             the files of stage N
  build N            stage N as a student builds it: its commands, then each new file in full
                     and each changed file as a diff with the whole file folded below it
                     (tools/build.py; shared_tests/test_build_from_docs.py follows it)
  table behaviours   what each stage does, from shared_tests/course.toml
  beyond markers     every `Beyond the tutorial:` comment in the stage folders
  bench NAME         a table from the benchmark's results (tools/bench/report.py)
  sandbox command    the bwrap command that serves a graded project (tools/grading/sandbox.py)
  grading table      `make bench-grading`'s last full run (tools/bench/grading.py)
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from tools.course import REPO, load_course
from tools.diff import code_files, stage_diff

DOCS = REPO / "docs"
# The browser tests' pictures of the stages.
SCREENSHOTS = DOCS / "images" / "screenshots"
BLOCK = re.compile(r"(<!-- BEGIN (\w+) (.*?) -->\n)(.*?)(<!-- END -->)", re.DOTALL)
FENCE_LANGUAGE = {
    ".py": "python",
    ".html": "html",
    ".toml": "toml",
    ".txt": "text",
    ".template": "nginx",  # deploy/nginx.conf.template
    ".service": "ini",  # a systemd unit
}
BEYOND = "Beyond the tutorial:"
LABELS = {
    "en": {
        "behaviour": "behaviour",
        "stage": "stage",
        "kind": "kind",
        "kept": "Keep these files as the commands wrote them: {files}.",
        "new": "**New file** `{name}`:",
        "changed": "**Change** `{name}`:",
        "whole": "The whole <code>{name}</code> after this change",
        "and": ", ",
    },
    "zh": {
        "behaviour": "行为",
        "stage": "阶段",
        "kind": "类别",
        "kept": "这些文件保持命令生成时的样子，不用改：{files}。",
        "new": "**新文件** `{name}`：",
        "changed": "**修改** `{name}`：",
        "whole": "改完之后完整的 <code>{name}</code>",
        "and": "、",
    },
}


class BlockError(ValueError):
    """A block that names something that does not exist."""


# ---------------------------------------------------------------------------- generators
def fenced(text: str, language: str) -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n"


def python_symbol(path: Path, name: str) -> str:
    """The source of a def/class/assignment called `name` (dotted: Class.method) in `path`."""
    source = path.read_text(encoding="utf-8")
    nodes = ast.parse(source).body
    node = None
    for part in name.split("."):
        node = next((n for n in nodes if symbol_name(n) == part), None)
        if node is None:
            raise BlockError(f"{path.relative_to(REPO)} has no {name}")
        nodes = getattr(node, "body", [])
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    # Keep the comment lines right above the symbol: they say why.
    while start > 1 and lines[start - 2].strip().startswith("#"):
        start -= 1
    snippet = lines[start - 1 : node.end_lineno]
    indent = min(len(line) - len(line.lstrip()) for line in snippet if line.strip())
    return "\n".join(line[indent:] for line in snippet)


def symbol_name(node: ast.AST) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def code_block(argument: str) -> str:
    relative, _, name = argument.partition("#")
    path = REPO / relative
    if not path.is_file():
        raise BlockError(f"{relative} does not exist")
    language = FENCE_LANGUAGE.get(path.suffix, "")
    text = python_symbol(path, name) if name else path.read_text(encoding="utf-8")
    return fenced(text, language)


def diff_block(argument: str) -> str:
    stages, _, only = argument.partition(" ")
    old, _, new = stages.partition("..")
    course = load_course()
    old_stage, new_stage = course.stage(int(old)), course.stage(int(new))
    text = stage_diff(old_stage.path, new_stage.path, only=only or None)
    if not text:
        raise BlockError(
            f"stages {old} and {new} do not differ in {only or 'any file'}"
        )
    return fenced(text, "diff")


def tree_block(argument: str) -> str:
    stage = load_course().stage(int(argument))
    files = sorted(code_files(stage.path))
    return fenced("\n".join(f"{stage.folder}/{name}" for name in files), "text")


def build_block(argument: str, language: str) -> str:
    """The commands of a stage, then its files: what a student types and writes."""
    from tools.build import BuildError, lesson

    labels = LABELS[language]
    try:
        built = lesson(int(argument))
    except BuildError as error:
        raise BlockError(str(error)) from None
    parts = []
    if built.commands:
        parts.append(fenced("\n".join(built.commands), "sh"))
    if built.kept:
        files = labels["and"].join(f"`{name}`" for name in built.kept)
        parts.append(labels["kept"].format(files=files) + "\n")
    for step in built.files:
        language_of_file = FENCE_LANGUAGE.get(Path(step.name).suffix, "")
        if step.before is None:
            parts.append(labels["new"].format(name=step.name) + "\n")
            parts.append(fenced(step.text, language_of_file))
            continue
        parts.append(labels["changed"].format(name=step.name) + "\n")
        parts.append(fenced(step.diff(), "diff"))
        summary = labels["whole"].format(name=step.name)
        parts.append(
            f"<details><summary>{summary}</summary>\n\n"
            + fenced(step.text, language_of_file)
            + "\n</details>\n"
        )
    return "\n".join(parts)


def behaviours_table(language: str) -> str:
    course = load_course()
    labels = LABELS[language]
    heads = [labels["behaviour"], labels["kind"]] + [
        f"{labels['stage']} {s.number}" for s in course.stages
    ]
    rows = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for b in course.behaviours:
        title = (b.title_zh if language == "zh" and b.title_zh else b.title).replace(
            "|", "\\|"
        )
        cells = ["✓" if word == "yes" else word for word in b.expect]
        rows.append(f"| {title} | {b.kind} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def beyond_markers() -> str:
    """Every `Beyond the tutorial:` comment, where it first appears (later stages inherit it)."""
    course = load_course()
    seen, lines = set(), []
    for stage in course.stages:
        for name, path in code_files(stage.path).items():
            for number, line in enumerate(
                path.read_text(encoding="utf-8").splitlines(), 1
            ):
                if BEYOND not in line:
                    continue
                reason = line.split(BEYOND, 1)[1].strip().rstrip("-> ").strip()
                if (name, reason) in seen:
                    continue
                seen.add((name, reason))
                link = f"../../{stage.folder}/{name}#L{number}"
                lines.append(f"- [`{stage.folder}/{name}:{number}`]({link}): {reason}")
    return "\n".join(lines) + "\n"


def bench_block(argument: str) -> str:
    from tools.bench.report import markdown_table

    return markdown_table(argument).rstrip() + "\n"


def generate(kind: str, argument: str, language: str) -> str:
    if kind == "code":
        return code_block(argument)
    if kind == "diff":
        return diff_block(argument)
    if kind == "tree":
        return tree_block(argument)
    if kind == "build":
        return build_block(argument, language)
    if kind == "table" and argument == "behaviours":
        return behaviours_table(language)
    if kind == "beyond" and argument == "markers":
        return beyond_markers()
    if kind == "bench":
        return bench_block(argument)
    if kind == "grading" and argument == "table":
        from tools.bench.grading import render

        return render()
    if kind == "sandbox" and argument == "command":
        from tools.grading.sandbox import example_command

        return fenced(example_command(), "sh")
    raise BlockError(f"unknown block <!-- BEGIN {kind} {argument} -->")


# ---------------------------------------------------------------------------- pages
def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def shown_in_docs(screenshot: str) -> bool:
    """Whether a docs page shows the screenshot named `screenshot` (in SCREENSHOTS)."""
    image = f"images/screenshots/{screenshot}"
    return any(image in page.read_text("utf-8") for page in pages())


def language_of(page: Path) -> str:
    return (
        page.relative_to(DOCS).parts[0]
        if page.relative_to(DOCS).parts[0] in LABELS
        else "en"
    )


def refreshed(page: Path) -> tuple[str, list[str]]:
    """The page with every block regenerated, and the problems found (bad block arguments)."""
    problems = []
    language = language_of(page)

    def replace(match: re.Match) -> str:
        begin, kind, argument, _, end = match.groups()
        try:
            return begin + generate(kind, argument.strip(), language) + end
        except (BlockError, KeyError, OSError) as error:
            problems.append(f"{page.relative_to(REPO)}: {kind} {argument}: {error}")
            return match.group(0)

    return BLOCK.sub(replace, page.read_text(encoding="utf-8")), problems


def stale_blocks(page: Path, text: str) -> list[str]:
    """The blocks of `page` whose content differs from what they would be regenerated as."""
    new_blocks = BLOCK.findall(text)
    old_blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    return [
        f"{page.relative_to(REPO)}: <!-- BEGIN {old[1]} {old[2]} --> is stale"
        for old, new in zip(old_blocks, new_blocks, strict=True)
        if old[3] != new[3]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="report stale blocks, write nothing"
    )
    args = parser.parse_args(argv)
    problems, stale = [], []
    for page in pages():
        text, page_problems = refreshed(page)
        problems += page_problems
        if args.check:
            stale += stale_blocks(page, text)
        elif text != page.read_text(encoding="utf-8"):
            page.write_text(text, encoding="utf-8")
            print(f"refreshed {page.relative_to(REPO)}")
    for line in problems + stale:
        print(line, file=sys.stderr)
    if stale:
        print("Run `make docs` to refresh the generated blocks.", file=sys.stderr)
    return 1 if problems or stale else 0


if __name__ == "__main__":
    sys.exit(main())

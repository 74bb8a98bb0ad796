"""Imports run one way (GUIDE.md): no cycle between project modules, recaption → captioner and eval → t2i never back,
omnicap imports no other package, model/data/loss modules never import a trainer, and a function-level import of a
project module only defers a heavy optional dependency (listed below with the reason). Read from the source (AST)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("omnicap", "captioner", "recaption", "t2i", "eval", "toyworld")

DEFERRED = {  # (module, imported module): why it is imported inside a function
    ("eval.caption_sources", "captioner.caption"): "source=captioner loads a captioner model (transformers)",
    ("eval.captions", "eval.clipscore"): "CLIPScore only with --clip_model (clip-anytorch and its weights)",
    ("eval.clipscore", "eval.clip_models"): "CLIP weights and clip-anytorch, only when scoring",
    ("eval.geneval", "eval.clip_models"): "CLIP colour classifier, only for the real GenEval detector",
    ("eval.detectors", "eval.mask2former"): "Mask2Former (transformers, weights), only for the real detector",
    ("eval.dpg", "eval.vqa"): "the VQA model (transformers), only for the real DPG-Bench judge",
    ("eval.llm", "captioner.models"): "a local LLM (transformers), only for --llm.backend local",
    ("eval.llm", "captioner.datagen"): "its tiny LM (transformers), only for --llm.backend local",
    ("recaption.engines", "captioner.inference"): "torch + transformers, needed by --engine hf/vllm only (openai is "
                                                  "a client)",
    ("recaption.run", "captioner.inference"): "the hf engine's Captioner (torch + transformers), not for vllm/openai",
}


def modules() -> dict[str, ast.Module]:
    found = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).glob("*.py")):
            name = pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"
            found[name] = ast.parse(f.read_text(), str(f))
    return found


def project_imports(nodes) -> set[str]:
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n.split(".")[0] in PACKAGES}
    return out


def top_level(tree: ast.Module) -> set[str]:
    """Imports executed when the module is imported (not inside functions or classes' methods)."""
    nodes = []
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        nodes.append(node)
        stack += [n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]
    return project_imports(nodes)


def in_functions(tree: ast.Module) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out |= project_imports(ast.walk(node))
    return out


def test_no_import_cycle():
    mods = modules()
    graph = {m: {i for i in top_level(t) if i in mods and i != m} for m, t in mods.items()}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, f"import cycle: {' -> '.join(path + [n])}"
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_imports_run_one_way():
    never = {"captioner": {"recaption"}, "t2i": {"eval"}, "omnicap": set(PACKAGES) - {"omnicap"}}
    for m, tree in modules().items():
        used = top_level(tree) | in_functions(tree)
        for imported in used:
            assert imported.split(".")[0] not in never.get(m.split(".")[0], set()), f"{m} imports {imported}"
        if m.split(".")[1:2] in (["data"], ["models"], ["flow"], ["step"], ["captions"]):
            assert not any(i.endswith(".train") for i in used), f"{m} imports a trainer"


def test_function_level_imports_only_defer_heavy_optional_dependencies():
    mods = modules()
    found = set()
    for m, tree in mods.items():
        for imported in in_functions(tree):
            module = imported if imported in mods else imported.rsplit(".", 1)[0]
            if module in mods:
                found.add((m, module))
    unexplained = sorted(found - set(DEFERRED))
    assert not unexplained, f"function-level imports of project modules (move them to the top): {unexplained}"

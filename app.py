"""LSTM Studio: one tab per domain of studio.domains.ALL. Loads every shipped model once, then
serves the page.

python app.py  ->  http://127.0.0.1:7860  (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never phone home; works offline
# torch backs CPU tensors of 2 MB and more with transparent huge pages: a 10,000-step trace
# allocates ~100 MB per layer, and faulting it in 4 KB pages is slower (docs/benchmarks.md, Text:
# sampling and the trace). torch reads this once, at its first allocation, so it is set before import.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from studio import checkpoint, jobs, limits, probe_kernel, reference, user_models, workers  # noqa: E402
from studio.domains import ALL, member  # noqa: E402
from studio.lab import tab as lab_tab  # noqa: E402
from studio.train import pick_device  # noqa: E402
from studio.ui import experiments_api, experiments_panel, library_tab, owner, train_tab  # noqa: E402
from studio.ui.common import apply_request_limits  # noqa: E402
from studio.ui.explain_panel import explain_api  # noqa: E402

TITLE = "LSTM Studio"
SESSIONS = int(float(os.environ.get("LSTM_STUDIO_SESSIONS", "1000")))  # sessions whose state gradio keeps
PAGE_CSS = (Path(__file__).parent / "studio" / "ui" / "page.css").read_text(encoding="utf-8")
INTRO = (
    "Generate sequences with LSTMs and see **why** they come out the way they do: every tab shows the "
    "input gate *i*, forget gate *f*, candidate *g*, output gate *o*, cell *c* and hidden state *h* of "
    "the model while it generated, aligned with what it produced."
)


def load_models(domain, models_dir=checkpoint.MODELS_DIR, device=None) -> tuple[dict, list[str]]:
    """({name: LoadedModel}, problems) for one domain's tab."""
    return checkpoint.load_models(domain.NAME, domain.load, models_dir, device or pick_device())


def load_all(models_dir=checkpoint.MODELS_DIR, device=None) -> dict:
    """{domain: (models, problems)}; cards that cannot be read at all (their domain is unknown)
    are reported by the first tab."""
    loaded = {domain: load_models(domain, models_dir, device) for domain in ALL}
    unreadable = checkpoint.scan(models_dir)[1]
    first = ALL[0]
    loaded[first] = (loaded[first][0], unreadable + loaded[first][1])
    return loaded


def add_user_models(loaded: dict, users: user_models.UserModels) -> None:
    """Each tab's list becomes a ModelTable: its shipped models, then the user models of whoever asks
    (studio.user_models: all of them off a shared server, only the browser's own and the published
    ones on a shared server), loaded when first asked for."""
    for domain, (models, problems) in list(loaded.items()):
        loaded[domain] = (user_models.ModelTable(domain, models, users), problems)


def build_demo(models_dir=checkpoint.MODELS_DIR, user_models_dir=jobs.USER_MODELS_DIR) -> gr.Blocks:
    if pick_device().type == "cpu":
        # Every tab samples at batch 1, one small matmul per step: a second intra-op thread gains
        # nothing alone and makes each step wait for the slower core when anything else runs (the
        # browser, another tab's request). docs/benchmarks.md, Text: sampling and the trace,
        # measures one thread against two.
        torch.set_num_threads(1)
    loaded = load_all(models_dir)
    users = user_models.UserModels(user_models_dir)
    add_user_models(loaded, users)
    models_of = {domain: models for domain, (models, _) in loaded.items()}  # each tab's table (shipped + the asker's)

    def stems(name: str) -> dict:
        """{model name: stem} of a domain's shipped models and the asker's own (what the Train tab may fine-tune)."""
        return {**checkpoint.list_models(name, models_dir), **users.stems(name, user_models.current_owner.get())}

    # a finished training's model is on disk in its owner's folder: their tables list it from there
    # (loaded when first asked for), so the trainer needs no callback
    trainer = jobs.Trainer(user_models_dir, data_dir=reference.DATA_DIR,
                           models_dir_of=lambda: users.folder_of(user_models.current_owner.get()),
                           owner_of=user_models.current_owner.get)
    trainer.restore()  # every owner's trainings from before a restart (studio.job_records), in their lists again
    for problem in [p for _, problems in loaded.values() for p in problems]:
        print(f"warning: {problem}", file=sys.stderr)  # also on the console, for whoever started the server
    # Gradio's cache (uploads) is swept hourly of files older than an hour; our outputs are capped
    # by studio.ui.common.prune_outputs
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.HTML(f"<style>{PAGE_CSS}</style>", padding=False, elem_id="page-style")  # studio/ui/page.css
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        key = owner.browser_key()  # this browser's owner key (studio.ui.owner): what it keeps is its own on a shared
                                   # server
        library_tab.shared_record(demo, loaded)  # a ?run=TOKEN link: its record made again and checked, above the tabs
        dropdowns = {}
        for domain in ALL:
            with gr.Tab(domain.TITLE):
                dropdown = importlib.import_module(f"{domain.__name__}.tab").create_tab(*loaded[domain])
            if dropdown is not None:
                dropdowns[domain] = dropdown
        with gr.Tab("Train"):
            train_inbox = train_tab.create_tab(trainer, stems, dropdowns, models_of, reference.DATA_DIR, users)
        with gr.Tab("Why LSTM"):
            lab_tab.create_tab(trainer)  # RNN, GRU and LSTM side by side, in the same job queue; also /lab
        with gr.Tab("Library"):
            library_tab.create_tab(loaded, train_inbox)  # every output kept: search, rate, share, export; /library_*
                                                         # endpoints
        gr.api(train_tab.train_api(trainer, stems), api_name="train")  # start, progress, cancel a training
        gr.api(explain_api(loaded), api_name="explain")  # why one step came out, for any domain (JSON)
        experiments_api.register(loaded)  # /probe, /intervene, /compare
        owner.issue_on_load(demo, key)
        train_tab.refresh_on_load(demo, key, dropdowns, models_of)  # each browser's menus list its own models
    # every event within the request deadline, in its tab's queue (one tab's long job never blocks another's);
    # each handler knows its browser's owner (studio.user_models.current_owner) and its tickets (studio.state_store)
    apply_request_limits(demo, key)
    demo.loaded = loaded  # {domain: (models, problems)}, for warm_up
    return demo


def warm_up(loaded: dict) -> None:
    """What makes first requests quicker, started once the page is served (before then a request
    runs in the app itself, studio.workers.call): the generation workers (each imports torch and
    the domains), the probe's compiled pass, and each tab's feature names for the probe (speech's
    imports librosa). Started before the page, the workers' imports fought the app's own for the
    cores (docs/benchmarks.md, App start-up)."""
    if pick_device().type == "cpu" and workers.WORKERS > 0:
        # generation in worker processes (studio/workers.py says why); batched text in a lane of its own
        workers.start(ALL, lanes={d.NAME: member(d, "WORKER_LANE") for d in ALL if member(d, "WORKER_LANE")})
    probe_kernel.warm()  # the probe's compiled pass, ready before a user asks
    for domain, (models, _) in loaded.items():
        if models:
            try:
                experiments_panel.feature_names(domain, models)
            except Exception as error:  # noqa: BLE001 (the panel says it again when opened)
                print(f"warning: {domain.NAME} feature names: {error}", file=sys.stderr)


if __name__ == "__main__":
    limits.bound_malloc()
    torch.set_grad_enabled(False)  # the app only ever runs models forward (set here: tests build demos too)
    demo = build_demo()
    # max_file_size: refused before it reaches any handler; state_session_capacity: the sessions whose
    # state gradio keeps (SESSIONS, least recently used out; each is a few tens of KB: studio.ui.common.lean_sessions)
    demo.launch(max_file_size=f"{jobs.MAX_UPLOAD_MB:g}mb", state_session_capacity=SESSIONS, prevent_thread_lock=True)
    threading.Thread(target=warm_up, args=(demo.loaded,), daemon=True).start()
    demo.block_thread()

"""Progress bars for long loops: tqdm on a terminal, silent in logs (the per-epoch line still prints)."""

from tqdm.auto import tqdm


def progress_bar(total=None, desc=None, disable=None, initial=0):
    """`disable=None` turns the bar off when stderr is not a terminal (CI logs stay readable)."""
    return tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True, initial=initial)

"""Mirror plots: observed spectrum up, predicted spectrum down."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nextims.spectrum import Spectrum  # noqa: E402


def mirror_plot(observed: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """A mirror plot of two binned spectra, each scaled to a maximum of 100."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for spectrum, sign, color, label in ((observed, 1, "black", "observed"), (predicted, -1, "tab:red", "predicted")):
        s = np.asarray(spectrum, dtype=float)
        s = 100 * s / s.max() if s.max() > 0 else s
        mz = np.nonzero(s)[0]
        ax.vlines(mz, 0, sign * s[mz], color=color, linewidth=1, label=label)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("m/z")
    ax.set_ylabel("relative intensity")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    """Release a figure."""
    plt.close(fig)


def spectrum_plot(spectrum: Spectrum, title: str) -> Figure:
    """A stick plot of one spectrum (relative intensity, maximum 100)."""
    fig, ax = plt.subplots(figsize=(8, 3))
    top = spectrum.intensities.max() if len(spectrum) else 1.0
    ax.vlines(spectrum.mz, 0, 100 * spectrum.intensities / top, color="black", linewidth=1)
    ax.set_xlabel("m/z")
    ax.set_ylabel("relative intensity")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig

"""Figures derived from finished cells (matplotlib/seaborn, written atomically as PNG)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from benchmark.core.store import atomic_write_bytes  # noqa: E402


def save_figure(figure: plt.Figure, path: Path, dpi: int = 110) -> Path:
    """Render ``figure`` to PNG at ``path`` atomically and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def sample_grid_figure(
    mixtures: np.ndarray, targets: np.ndarray, source_names: tuple[str, ...],
    estimates: dict[str, np.ndarray], path: Path,
) -> Path:
    """Rows = test samples; columns = mixture, true sources, each method's assigned estimates."""
    n = mixtures.shape[0]
    titles = ["mixture", *(f"true {s}" for s in source_names)]
    for label in estimates:
        titles += [f"{label}: {s}" for s in source_names]
    figure, axes = plt.subplots(n, len(titles), figsize=(1.3 * len(titles), 1.35 * n), squeeze=False)
    for row in range(n):
        images = [mixtures[row], *targets[row]]
        for label in estimates:
            images += list(estimates[label][row])
        for col, image in enumerate(images):
            ax = axes[row, col]
            if np.all(np.isfinite(image)):
                ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=6)
    figure.suptitle("Test samples and assigned source estimates", fontsize=9)
    return save_figure(figure, path)


def decoder_weight_figure(weights: list[np.ndarray], n_encoders: int, path: Path) -> Path:
    """``|weights|`` of each decoder layer summed over the kernel (paper Figure 4).

    Each matrix is ``(C_out, C_in)``; the input layer is shown transposed as in
    the paper. Lines mark the N x N encoder blocks whose off-diagonal part the
    sparse mixing loss drives towards zero.
    """
    figure, axes = plt.subplots(1, len(weights), figsize=(2.4 * len(weights), 2.6), squeeze=False)
    for index, (ax, matrix) in enumerate(zip(axes[0], weights, strict=True)):
        shown = matrix.T if index == 0 else matrix
        sns.heatmap(shown, ax=ax, cmap="viridis", cbar=False, xticklabels=False, yticklabels=False)
        rows, cols = shown.shape
        for k in range(1, n_encoders):
            ax.axhline(k * rows / n_encoders, color="white", lw=0.6)
            ax.axvline(k * cols / n_encoders, color="white", lw=0.6)
        ax.set_title("input layer (T)" if index == 0 else f"conv block {index}", fontsize=8)
    figure.suptitle("Decoder |weights| summed over kernel (blocks = encoder pathways)", fontsize=9)
    return save_figure(figure, path)


def _time_axis(length: int, sampling_rate: float = 200.0) -> np.ndarray:
    return np.arange(length) / sampling_rate


def mesa_examples_figure(signals: dict[str, np.ndarray], input_name: str, estimates: dict[str, np.ndarray], path: Path) -> Path:
    """Example test segments: the input, the reference signals and each method's respiratory estimate (paper Figure 5).

    ``signals`` maps channel name to ``(n, L)``; ``estimates`` maps method label to ``(n, L)``.
    """
    n = signals[input_name].shape[0]
    names = [input_name, *(k for k in signals if k != input_name)]
    rows = len(names) + len(estimates)
    figure, axes = plt.subplots(rows, n, figsize=(4.2 * n, 0.95 * rows), squeeze=False, sharex=True)
    t = _time_axis(signals[input_name].shape[1])
    palette = sns.color_palette("tab10", len(estimates))
    for col in range(n):
        for row, name in enumerate(names):
            axes[row, col].plot(t, signals[name][col], lw=0.5, color="0.2")
            axes[row, col].set_ylabel(name, fontsize=6, rotation=0, ha="right")
        for offset, (label, estimate) in enumerate(estimates.items()):
            ax = axes[len(names) + offset, col]
            ax.plot(t, estimate[col], lw=0.7, color=palette[offset])
            ax.set_ylabel(label, fontsize=6, rotation=0, ha="right")
        axes[-1, col].set_xlabel("time (s)", fontsize=7)
    for ax in axes.flat:
        ax.set_yticks([])
        ax.tick_params(labelsize=6)
    figure.suptitle(f"{input_name}: example test segments, references and respiratory estimates", fontsize=9)
    return save_figure(figure, path)


def mesa_outputs_figure(segment: np.ndarray, outputs: np.ndarray, choice: dict[str, int], input_name: str, path: Path) -> Path:
    """Every MEAE output for one segment, the chosen respiratory outputs marked (paper Figure 11)."""
    k = outputs.shape[0]
    figure, axes = plt.subplots(k + 1, 1, figsize=(8, 0.8 * (k + 1)), sharex=True)
    t = _time_axis(segment.shape[0])
    axes[0].plot(t, segment, lw=0.5, color="0.2")
    axes[0].set_ylabel(input_name, fontsize=7, rotation=0, ha="right")
    for index in range(k):
        marks = [rule for rule, chosen in choice.items() if chosen == index]
        color = "tab:red" if marks else "tab:blue"
        axes[index + 1].plot(t, outputs[index], lw=0.6, color=color)
        axes[index + 1].set_ylabel(f"enc {index}" + (f"\n({', '.join(marks)})" if marks else ""), fontsize=6, rotation=0, ha="right")
    for ax in axes:
        ax.set_yticks([])
    axes[-1].set_xlabel("time (s)", fontsize=7)
    figure.suptitle(f"All MEAE outputs for one {input_name} test segment (red: chosen respiratory output)", fontsize=9)
    return save_figure(figure, path)


def bland_altman_figure(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]], input_name: str, path: Path, reference: str = "nasal pressure",
) -> Path:
    """Bland-Altman plot per method: rate difference vs mean, estimate vs the reference's rate."""
    n = len(pairs)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    figure, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (label, (estimate, reference)) in zip(axes.flat, pairs.items(), strict=False):
        both = np.isfinite(estimate) & np.isfinite(reference)
        mean = (estimate[both] + reference[both]) / 2
        diff = estimate[both] - reference[both]
        ax.scatter(mean, diff, s=4, alpha=0.5)
        if both.any():
            bias, spread = diff.mean(), 1.96 * diff.std()
            for value, style in ((bias, "-"), (bias + spread, "--"), (bias - spread, "--")):
                ax.axhline(value, color="tab:red", ls=style, lw=0.8)
            ax.set_title(f"{label}\nbias {bias:.2f}, LoA ±{spread:.2f} (n={both.sum()})", fontsize=7)
        else:
            ax.set_title(f"{label}\nno common rates", fontsize=7)
        ax.set_xlabel("mean rate (breaths/min)", fontsize=7)
        ax.set_ylabel(f"estimate − {reference} (breaths/min)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    figure.suptitle(f"Bland-Altman, {input_name}-derived rate vs {reference} rate (test)", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


LOSS_TERMS = ("total", "recon", "mixing", "zero", "encoding")


def training_curves_figure(histories: dict[str, dict[int, list[dict]]], path: Path) -> Path:
    """Each method's loss terms per epoch, one line per seed, one row per method.

    ``histories`` maps a method label to ``{seed: fit_history}`` where each
    history entry holds ``epoch`` and loss terms; a row shows the terms of
    :data:`LOSS_TERMS` its method reports (MEAE: all of Eq. 21), then its
    others. Epochs cut short by a time limit get a hollow marker. The paper's
    Appendix B.2 discusses the resets such curves show.
    """
    skip = {"epoch", "seconds", "samples", "complete", "kl_weight"}
    rows = {}
    for label, runs in histories.items():
        present = {k for history in runs.values() for h in history for k in h} - skip
        rows[label] = [t for t in LOSS_TERMS if t in present] + sorted(present - set(LOSS_TERMS))
    n_cols = max(len(terms) for terms in rows.values())
    figure, axes = plt.subplots(len(rows), n_cols, figsize=(2.6 * n_cols, 2.2 * len(rows)), squeeze=False)
    palette = sns.color_palette("colorblind")
    for row, (label, terms) in enumerate(rows.items()):
        for col in range(n_cols):
            ax = axes[row, col]
            if col >= len(terms):
                ax.axis("off")
                continue
            term = terms[col]
            for index, (seed, history) in enumerate(sorted(histories[label].items())):
                points = [(h["epoch"] + 1, h[term], h.get("complete", True)) for h in history if term in h]
                if not points:
                    continue
                epochs, values, _ = zip(*points, strict=True)
                color = palette[index % len(palette)]
                ax.plot(epochs, values, color=color, linewidth=1, marker="o", markersize=2.5, label=f"seed {seed}")
                for epoch, value, whole in points:
                    if not whole:
                        ax.plot(epoch, value, marker="o", markersize=6, markerfacecolor="none", color=color)
            if term in ("mixing", "zero", "encoding"):
                ax.set_yscale("log")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_title(f"{label}: {term}", fontsize=7)
            ax.set_xlabel("epoch", fontsize=6)
            ax.tick_params(which="both", labelsize=6)
            if col == 0:
                ax.legend(fontsize=5)
    figure.suptitle("Training losses per epoch (mean over the epoch's steps)", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)

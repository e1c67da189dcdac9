"""Model fits of a campaign: run on the executor when due, numbered and recorded in the trace.

Two kinds of fit reach the trace and MLflow, both numbered in trace order:

* an agent that :class:`~coscope.agents.protocols.FitsOnExecutor` is fitted by the loop on its
  executor (a Dask worker) when its data schedule asks for it (:meth:`FitBook.refit_if_due`);
* an agent that :class:`~coscope.agents.protocols.HandsOverFits` fits itself (in-process, in
  the background, or through the executor it :class:`~coscope.agents.protocols.UsesExecutor`)
  and hands the records over (:meth:`FitBook.take_agent_fits`).

After a resume the agent catches up on the data it is rebuilt from: its first fits reproduce
stored versions (same data prefix, same seed, so the same model); they are loaded under the
stored version and not recorded twice. "The same" is the data size and the loss up to
:data:`SAME_LOSS_RTOL`: an agent rebuilt from the trace derives its training data in other
batches (a VAE encoding eight spectra at once instead of one by one), which changes the
last bits of the data and of the loss, not the model.
"""

from __future__ import annotations

import math
from dataclasses import replace

from coscope.campaign.context import CampaignContext
from coscope.campaign.executors import Executor
from coscope.types import FitRecord

SAME_LOSS_RTOL = 1e-9
"""Relative tolerance within which a refit's loss is the stored fit's (rounding, not data)."""


def fit_key(record: FitRecord) -> tuple:
    """Which model an agent fitted itself: its data size, and which of its models it is
    (``role``, ``modality_index``: an agent may fit several per refresh)."""
    hp = record.hyperparameters
    return (record.n_train, str(hp.get("role", "")), hp.get("modality_index"))


def same_loss(a: float, b: float) -> bool:
    """Whether two fits' losses agree up to rounding (:data:`SAME_LOSS_RTOL`)."""
    return a == b or math.isclose(a, b, rel_tol=SAME_LOSS_RTOL, abs_tol=1e-12)


class FitBook:
    """The fits of one campaign run (see the module docstring)."""

    def __init__(self, ctx: CampaignContext, executor: Executor) -> None:
        self.ctx = ctx
        self.executor = executor
        self.n_fits = 0
        self.last: FitRecord | None = None
        self._stored: list[FitRecord] = []
        self._stored_agent: dict[tuple, list[float]] = {}
        self.resuming = False
        """Until the first new decision after a resume: the agent catches up."""

    def restore(self, fits: list[FitRecord]) -> None:
        """Continue after the fits stored in the trace."""
        self.n_fits = len(fits)
        self.last = fits[-1] if fits else None
        self._stored = list(fits)
        self._stored_agent = {}
        for f in fits:
            self._stored_agent.setdefault(fit_key(f), []).append(f.loss)
        self.resuming = bool(fits)

    def connect(self) -> None:
        """Hand the executor to an agent that fits through it (once per agent)."""
        uses = self.ctx.abilities.uses_executor
        if uses is not None:
            uses.use_executor(self.executor)

    def refit_if_due(self) -> None:
        """Fit on the executor when the agent's data schedule asks for it."""
        ctx = self.ctx
        agent = ctx.abilities.fits_on_executor
        if agent is None or not agent.needs_fit(0):
            return
        X, y = agent.training_data()
        state = self.executor.fit(
            agent.model_kind,
            X,
            y,
            agent.fit_seed(),
            ctx.spec.policy.fit_iterations,
            agent.fit_options(),
        )
        candidates = [self.last] if self.last is not None else []
        for last in [*candidates, *self._stored]:
            if last.n_train == len(y) and same_loss(last.loss, state.loss):
                agent.load_fit(state, last.version, last.step)
                return
        self._stored = []  # past the stored fits: a resume's catching up is over
        version = self.n_fits
        record = agent.load_fit(state, version, len(y))
        ctx.store.append_fit(record)
        ctx.tracker.log_fit(record)
        if version % ctx.spec.checkpoint_every == 0:
            ctx.tracker.log_checkpoint(state, version)
            if ctx.on_checkpoint is not None:
                ctx.on_checkpoint(version)
        latent = ctx.abilities.embedding
        embedding = latent.embedding() if latent is not None else None
        if embedding is not None:  # DKL: the latent picture of every pixel, kept per version
            ctx.tracker.log_array(f"embeddings/v{version:04d}.npy", embedding)
        self.n_fits += 1
        self.last = record

    def take_agent_fits(self) -> None:
        """Record fits the agent made itself, numbered in trace order."""
        ctx = self.ctx
        hands = ctx.abilities.hands_over_fits
        for record in hands.take_fits() if hands is not None else ():
            stored = self._stored_agent.get(fit_key(record), []) if self.resuming else []
            if any(same_loss(loss, record.loss) for loss in stored):
                continue  # a resume refitting what the trace already holds (same data, seed)
            record = replace(record, version=self.n_fits)
            ctx.store.append_fit(record)
            ctx.tracker.log_fit(record)
            self.n_fits += 1
            self.last = record

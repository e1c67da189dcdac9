"""Deciding what to do next: plain data in (budget state, queues, the agent), proposals out.

Nothing here touches the trace, the tracker or the executor. The loop asks, in this order,
for each decision level (``0``: idle instruments, ``1..queue_depth``: the queues behind them)
and each active instrument (spec order) whose queue is shorter than the level:

1. :func:`wants_decision` — has it room at this level (and, queued, may it decide ahead)?
2. :meth:`BudgetState.allows` its cheapest request (else the agent is not asked: the
   budget is used up);
3. :func:`decide` — the agent's :meth:`~coscope.agents.protocols.Agent.propose` for an
   :class:`~coscope.agents.protocols.Ask` with every pending proposal; ``None`` when the
   agent, or the budget at the proposal's expected cost, says no.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coscope.agents.protocols import Agent, Ask
from coscope.campaign.queues import starts_in_time
from coscope.config import BudgetSpec, CampaignSpec
from coscope.types import Proposal


@dataclass(frozen=True)
class BudgetState:
    """What the campaign has used and committed.

    Attributes:
        n_measured: Measurements the campaign paid for (theory batches are paid elsewhere).
        spent: Cost of the stored measurements.
        n_inflight: Requests decided but not yet recorded (in flight, queued, replayed).
        inflight_cost: Their expected cost.
    """

    n_measured: int
    spent: float
    n_inflight: int = 0
    inflight_cost: float = 0.0

    @property
    def n_committed(self) -> int:
        """Measurements done plus requests in flight."""
        return self.n_measured + self.n_inflight

    @property
    def committed(self) -> float:
        """Cost spent plus the expected cost of the requests in flight."""
        return self.spent + self.inflight_cost

    def allows(self, budget: BudgetSpec, cost: float, reserve: int = 0) -> bool:
        """Room for one more request of ``cost`` (and ``reserve`` more measurements after it)."""
        if budget.max_measurements is not None:
            if self.n_committed + reserve >= budget.max_measurements:
                return False
        return budget.max_cost is None or self.committed + cost <= budget.max_cost + 1e-9


def may_decide_ahead(
    spec: CampaignSpec,
    instrument: str,
    n_queued: int,
    active: Sequence[str],
    cost_of: Callable[[str], float],
    state: BudgetState,
) -> bool:
    """Queue a request only while the budget would still give every instrument one more, and
    while it would start before the rest of the budget is used up (:mod:`.queues`).

    Near the end a request queued on a slow instrument would keep the campaign running long
    after the fast ones ran out of budget; there the queues drain and every instrument gets
    its last requests when idle, as without queues.
    """
    cost = cost_of(instrument) + sum(cost_of(n) for n in active)
    if not state.allows(spec.budget, cost, reserve=len(active)):
        return False
    return starts_in_time(
        spec, instrument, n_queued, active, cost_of, state.n_committed, state.committed
    )


def wants_decision(level: int, n_queued: int, may_ahead: Callable[[], bool]) -> bool:
    """Whether an instrument with ``n_queued`` requests gets a decision at queue ``level``."""
    if n_queued > level:
        return False
    return level == 0 or may_ahead()


def decide(agent: Agent, ask: Ask, budget: BudgetSpec, state: BudgetState) -> Proposal | None:
    """The agent's proposal for ``ask`` if the budget allows its expected cost, else ``None``.

    Args:
        agent: The campaign's agent.
        ask: The question (step, instrument, offered modalities, pending, price).
        budget: The campaign's budget.
        state: What is used and committed now.
    """
    proposal = agent.propose(ask)
    if proposal is None or not state.allows(budget, proposal.expected_cost):
        return None
    return proposal

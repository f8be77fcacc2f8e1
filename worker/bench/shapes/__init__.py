"""The shapes, by name, in the order `--shape all` runs them; each returns its figures."""

from .idle import idle
from .latency import signal, single
from .sleepers import sleepers
from .sqlite import sqlite
from .starts import starts
from .steps import steps
from .throughput import fanout, one, ten

RUNNERS = {
    "starts": starts,
    "one": one,
    "ten": ten,
    "single": single,
    "signal": signal,
    "fanout": fanout,
    "steps": steps,
    "sleepers": sleepers,
    "idle": idle,
    "sqlite": sqlite,
}

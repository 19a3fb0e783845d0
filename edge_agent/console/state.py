"""What every request of the console shares: the station's config and the readers built on it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.console.agent_state import AgentWatch
from edge_agent.console.heatmaps import HeatmapMaker
from edge_agent.console.images import BoardImages
from edge_agent.console.journal_reader import JournalReader
from edge_agent.console.security import SessionCodec
from edge_agent.contracts.config import StationConfig, load_config
from edge_agent.store.crop_store import JOURNAL_FILE


@dataclass
class ConsoleState:
    """The station as loaded from `config_path`; `reload` after the set-up saved a new one."""

    config_path: Path
    codec: SessionCodec
    users: dict[str, str] = field(default_factory=dict)
    config: StationConfig = field(init=False)
    journal: JournalReader = field(init=False)
    images: BoardImages = field(init=False)
    heatmaps: HeatmapMaker = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    agent: AgentWatch = field(default_factory=AgentWatch)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the config again and rebuild what depends on it."""
        self.config = load_config(self.config_path)
        drift = self.config.drift  # off: an alarm left in the journal is no longer watched
        head = drift.review_head_boards if drift.enabled else 0
        self.journal = JournalReader(self.config.paths.state / JOURNAL_FILE, head)
        self.images = BoardImages(self.config)
        self.heatmaps = HeatmapMaker(self.config.paths.models)

    @property
    def journal_path(self) -> Path:
        return self.config.paths.state / JOURNAL_FILE

    @property
    def connectors(self) -> list[str]:
        """The connectors the agent inspects (enabled ones)."""
        return [cid for cid, c in self.config.connectors.items() if c.enabled]

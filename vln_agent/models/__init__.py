"""Navigation models: EnvDrop's follower (listener) with its critic, and the speaker."""

from vln_agent.models.follower import Follower, FollowerConfig
from vln_agent.models.speaker import Speaker, SpeakerConfig

__all__ = ["Follower", "FollowerConfig", "Speaker", "SpeakerConfig"]

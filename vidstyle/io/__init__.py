"""Sources and sinks: where frames come from and where they go."""
from vidstyle.io.sink import EncodeSettings, FileSink
from vidstyle.io.source import FileSource, VideoInfo, probe

__all__ = ["EncodeSettings", "FileSink", "FileSource", "VideoInfo", "probe"]

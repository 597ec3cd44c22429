# Planted by the grader (stage 6): the channel layer lives in one process's memory, so a second
# server process (another worker) never hears the rooms of the first.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Planted by the grader (stage 6): a name no setting uses; the settings behave the same.
_planted_settings_unchanged = True

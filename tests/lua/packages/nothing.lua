-- Returns nothing: require gives true.
side_effect = "ran"

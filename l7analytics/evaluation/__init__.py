"""How well the detectors do: synthetic traffic with labelled incidents (:mod:`.synth`) and
precision and recall of alerts against the labels (:mod:`.metrics`)."""

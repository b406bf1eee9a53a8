"""The network: torchvision's Mask R-CNN built from the config (``model``) with phase-aware RoI heads (``roi_heads``)."""

"""Networks: backbones (ResNet38d, torchvision ResNets, a toy CNN) and the CAM network."""

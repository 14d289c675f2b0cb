"""Every training loss, each a function on tensors (mmsegmentation's functional split, without
its registry): `classification` (L_cls, every CAM method's), `ktse` (SSR pseudo-labels, SIE and
MGA terms), `irn` (affinity and displacement), `dino` (FSR's self-distillation) and
`segmentation` (CE on pseudo-masks). The methods and training stages combine them."""

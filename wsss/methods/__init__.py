"""The CAM methods train_cam can run: each one module (its network, optimizer, schedule and loss;
wsss.methods.base), named in wsss.methods.registry beside its params model in
wsss.config.train_cam."""

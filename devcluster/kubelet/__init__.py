"""The devcluster's process kubelet: registers a Node and runs the pods bound to it as local
processes (no container runtime; images are ignored). Run it as
`python -m devcluster.kubelet --kubeconfig K --node-name N --state-dir D`; see
`devcluster/README.md`.
"""

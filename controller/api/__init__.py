"""Models of the Kuberik and tidegate custom resources, and the actions a plan is made of.

Callers: every other controller module. Pure data: no I/O, no kopf.
"""

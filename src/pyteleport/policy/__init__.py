"""Pure decisions: may this identity log in as L, which principals and extensions its certificate
carries, for how long, and may it act on a resource. No I/O; callers pass roles and a clock.
"""

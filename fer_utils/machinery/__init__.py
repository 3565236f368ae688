"""The study's machinery: what runs, checks, measures and publishes the notebooks.

A student reading the study does not need these modules; the lessons are in the modules the
notebooks call (``fer_utils.data``, ``model``, ``train``, ``evaluate``, ``plots``, ``balance``,
``augment``, ``gradcam``, ``predict``). Here live:

* ``study``: the papermill runner (``fer-study``) and the parameter profiles (``profiles.toml``);
* ``speed``: the precision each machine trains in (bfloat16 / float16 mixed precision);
* ``backend``: the Keras backend and device, and the one gradient step that differs between backends;
* ``bench``: the benchmark that states speed as a ratio to the machine's ceiling;
* ``nbcheck``: the checkable copies of committed notebooks for nbval;
* ``publish``: publishing a finished run into the repository (``fer-publish``);
* ``classroom``: the teaching kit's student copies.
"""

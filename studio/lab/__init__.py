"""The "Why LSTM" lab: a tanh RNN, a GRU and an LSTM (the studio's own core, `studio.lstm`)
trained side by side on the same batches of a long-range task, with the gradient that reaches
back k steps measured by autograd at every checkpoint. Not a domain: it uses the core, the trace
viewer and "ask why" like any other shared module.

    tasks.py      the adding problem, copy / recall, close the quote (a user's text)
    cells.py      the three cells (plus the LSTM's ablations) at matched parameter counts
    gradients.py  ||dL_T/dh_{T-k}||, ||dL_T/dx_{T-k}|| and the forget-gate product, in float64
    run.py        lockstep training within a wall budget, progress lines, the sweep over T
    explainer.py  the trained LSTM's Trace and Explainable (the trace viewer, ask why)
    plots.py      the loss and gradient pictures (matplotlib), from a saved run or progress lines
    service.py    a run as a job of the studio's queue (studio.jobs.Trainer.submit_command)
    cli.py        python -m studio lab --task adding --length 100 --cells rnn,lstm --minutes 2
    tab.py        the "Why LSTM" tab (the only file here that imports gradio)
"""

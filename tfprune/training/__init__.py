"""The joint schedule of a run, one module per step:

    trainer.run            the schedule, the one gin entry point (`run.epochs`, `run.warmup_epochs`, ...)
    start                  its set-up: epoch check, runtime (determinism, strategy, role, lock check),
                           seeding, the model and the pruner
    context.RunContext     what every phase shares (strategy, run directory, data, log)
    joint_phase.JointPhase warm-up and joint epochs, then the selection (`Selected`)
    finetune.finetune      the physical cut and the fine-tuning of the compact model
    summary.finish         the summary, exports, history.json, summary.json, plots

and what they use: `weight_trainer` (the training steps), `run_log` (console lines, TensorBoard),
`progress_bar`, `plots`.

Nothing is imported here: import the modules (`from tfprune.training.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""

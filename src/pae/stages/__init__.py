"""The stage layer: one module per rule file of the workflow (workflow/rules/<name>.smk), each holding the
`run_<rule>` drivers that read a rule's input files, call the science modules and write the outputs
atomically. `pae.stages.rules` holds the helpers the rule files call (inputs, params, runtimes)."""

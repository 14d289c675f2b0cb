"""What configures a run: every params model, torch-free (pydantic and YAML only), so that
reading and validating params, `wsss --help` and compiling the pipeline import no ML code."""

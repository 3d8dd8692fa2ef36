"""DPHMM: per-entity sequences (a patient's visits and labs, an account's transactions) from
a differentially private hidden Markov model whose start and transitions depend on the
entity's static context.

Generative story for one entity
-------------------------------
1. context row: the static attributes (sex, birth year, account type), the sequence length
   `__length__` (1..max_length) and the time of the first event `__start__`, drawn jointly
   by a DP table model (DPTVAE by default) — so length and start stay related to context;
   the drawn lengths are then moved (fewest rows) onto the fit's DP length histogram
   (`length:max`, already charged; `preprocess.length_margin`, `context.lengths_on_histogram`),
   whose σ is about half the context model's counts': a balanced panel stays balanced;
2. hidden states s_1..s_T: s_1 ~ softmax(b_π + W_π c), s_t | s_{t−1} = i ~ softmax(B_i + W_A c),
   where c is the context row in the table model's DP encoding (the context shifts the
   start logits and the logit of every destination state);
3. per event, given its state: a categorical per categorical/boolean column, per small-range
   integer column and per null indicator; a Gaussian per continuous column in a DP-
   standardised space (mean and sd of the DP mixture of the core NumericTransform); and the
   gap to the previous event — a categorical over DP-released common gaps (a yearly panel's
   "1" comes out exact) plus OTHER, whose log-gap is Gaussian in its own standardised space.
   Emissions are autoregressive given the state (see HMMNet).

Privacy (unit = entity)
-----------------------
- Contribution bound: an entity keeps its first `max_length` events (public, or chosen by a
  DP quantile of the length histogram, sensitivity 1). Every event-level histogram then has
  L2 sensitivity max_length; entity counts and the length histogram have sensitivity 1.
- Kinds without a schema (under a budget): decided from noisy class counts
  (synthkit.dp_schema), first thing in the ledger, over one event per entity and the
  context's one row per entity (see `DPHMM._decide_kinds`); on top of the shares below.
- Preprocessing (`preprocessing_epsilon_share`): the core DP mechanisms — DP counts,
  DP category discovery (partition selection), DP bounds and histograms — for the event
  columns and the gaps, planned from the schema and the budget before any data is read.
  An undeclared categorical event column's labels are released with the ENTITY as the unit
  instead (each entity's label counts normalised to L2 norm 1: sensitivity 1, not
  max_length; `discovery`), on top of the share (DP-SGD pays).
- Context model: a table model fitted on ONE ROW PER ENTITY in the SAME ledger; it may
  spend up to a cumulative (preprocessing + context) share of ε, checked by the ledger.
- HMM: DP-SGD over Poisson-sampled ENTITIES. One entity's whole (truncated) sequence is one
  sample; its loss is the negative log-likelihood from the forward algorithm (log space,
  vectorised over a padded [batch, T] tensor with masks). Exact per-sample gradients come
  from Opacus' functorch path (`ft_compute_per_sample_gradient`, vmap of grad over the
  batch) on a module holding raw nn.Parameters; Opacus' DPOptimizer clips each entity's
  gradient to `max_grad_norm`, adds N(0, σ²C²) and divides by the expected batch size.
  σ is calibrated against the WHOLE ledger (everything spent before) before training, and
  each epoch is charged as a sampled-Gaussian event; the accountant composes all of it.
- Initialisation looks at no data: seeded random emissions, a public "sticky" prior on the
  transition bias. Everything in the bundle is public (schema, hyperparameters) or DP.
- Post-processing (free): sampling, terminal-event masking, time reconstruction.

Memory: events are kept ragged ([n_events, features], the size of the input); each step

Modules
-------
- `model`: DPHMM — hyperparameters, the fit as named steps, sampling in chunks, the bundle;
- `kinds`: column kinds (declared, or decided under DP first) and roles (events, context);
- `preprocess`: the preprocessing plan, the contribution bound, the DP gap model;
- `discovery`: the labels of undeclared categorical event columns, entity as the unit;
- `layout`: the emission channels (one loop for a fitted and a loaded layout) and the
  encoding of the events; the standardised space;
- `context`: the context table (static attributes, length, start) and its model's fit in
  the shared ledger;
- `network`: HMMNet (the forward algorithm); `train`: batches, the DP step, the loop;
- `sample`: sampling the HMM and decoding events (post-processing).
"""

# Re-exported: every name `from synthkit.models.hmm import ...` gave before the split
# (tests and benchmarks import HMMNet, HMMDPStep and _Batches from here).
from synthkit.models.hmm.context import LENGTH, MAX_CONTEXT_CATEGORIES, START, _length_start_columns
from synthkit.models.hmm.layout import GAP, GAP_EVENT, GAP_WHAT, Standardiser, _column_floats, _gap_keys
from synthkit.models.hmm.model import CONTEXT_DIR, DPHMM, STREAMS
from synthkit.models.hmm.network import _LOG_2PI, HMMNet
from synthkit.models.hmm.preprocess import (DEFAULT_MAX_BATCH, MAX_LENGTH_CAP, _gap_label, _gaussian_of_epsilon,
                                            _public_log_gap_bounds)
from synthkit.models.hmm.sample import SequenceSample, _draw, _floats_to_series
from synthkit.models.hmm.train import HMMDPStep, _Batches

__all__ = ["DPHMM", "HMMDPStep", "HMMNet", "SequenceSample", "Standardiser"]

"""The inclusion platform's rule engine: is an exam a center sends fit for its question?

Before the final day, inclusion centers send exams (a study: one or more DICOM series, plus an
annotation: a mask, nodule positions, a clinical row) for each question of the challenge. Each
question declares its inclusion criteria in the event file (`[challenges.inclusion.criteria]`,
parsed by `criteria.parse_criteria`): modality, one slice or a volume, slice thickness, the
reconstruction kernel's class, contrast, the MR sequence and acquisition, what the annotation
must hold. The seed's Table 1 is the model: sarcopenia on one soft-kernel CT slice of 1.25 to
7 mm, nodules on a thin (< 1.25 mm), mostly hard-kernel CT volume with 1 to 5 nodules, multiple
sclerosis on a 3-D or axial 2-D FLAIR with age, sex, exam date and EDSS.

Everything here is pure: no server, no database, no file reading. The uploads and the DICOM
node build a `headers.SeriesSummary` per series as files arrive (headers only, one file at a
time); `check.check_study` turns summaries and criteria into `Violation`s written for the
center ("slice thickness 2.5 mm; this question needs < 1.25 mm"), each a `violation` (the exam
is excluded unless an organizer accepts it) or a `warning` (a reviewer looks). The annotation's
checks (`annotation`) take arrays and rows already read. docs/inclusion.md is the reference.

Modules: `criteria` (the declared rules), `violation` (what a check finds), `headers` (a
series' summary from its headers), `kernels` (vendor kernel names to soft/hard), `contrast`
(was contrast injected), `mri` (FLAIR, acquisition), `check` (headers against criteria),
`annotation` (mask, nodules, clinical row).
"""

//! ffprobe/ffmpeg as locked-down child processes: probe with limits, plan the arguments from a
//! Variant, run with a process-group kill on timeout or drop, stream stdout. OWNER: transcode helper.

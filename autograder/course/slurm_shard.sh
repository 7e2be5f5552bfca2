#!/usr/bin/env bash
# One shard of `grade --course` as a task of a SLURM job array: task i of an array of N grades the
# students whose id hashes to i (autograder/course/shards.py), so the array grades everyone once.
#
#   sbatch --array=0-9 autograder/course/slurm_shard.sh /shared/courses/xai-2027 [grade options]
#
# The course folder must be on a file system every node mounts (same path), and its gradebook on a
# database server (`course init --db-url postgresql://...`): shards on a SQLite course wait for one
# another. sbatch passes the submitting shell's environment on (activate the kit's virtual
# environment first, or set PYTHON), XAI_KIT_DB_URL and PGPASSWORD included where they are used.
# Any array range works (--array=1-10 too): the shard is the task's place in the array.
#SBATCH --job-name=xai-grade
#SBATCH --cpus-per-task=4
#SBATCH --output=xai-grade-%A_%a.out
set -euo pipefail
course=${1:?usage: sbatch --array=0-(N-1) slurm_shard.sh COURSE [grade options]}
shift
shard=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN))/$SLURM_ARRAY_TASK_COUNT
exec "${PYTHON:-python3}" -m autograder grade --course "$course" --shard "$shard" \
  --jobs "${SLURM_CPUS_PER_TASK:-1}" --quiet "$@"

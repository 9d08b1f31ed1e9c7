#!/usr/bin/env bash
# The paper's comparisons at convergence (issue 22, item 3): every arm trained with
# --until-plateau on the paper-cpu preset, in run directories under ROOT (outside the work tree).
# Resumable: re-run the same command after a stop, a SIGTERM or a reboot; each experiment picks up
# where it stopped (finished arms and scores are not redone). Meant for a background run:
#
#   nohup scripts/converged_experiments.sh /work/runs/converged > converged.log 2>&1 &
#   scripts/converged_experiments.sh ROOT [full|smoke] [STAGE...]
#
# STAGEs (default all, in this order): data, fm-k-sweep, fm-gan-check, fm-aux-ablation,
# fm-generation, photo-k-sweep (this one needs PHOTOS=DIR holding train/ and test/, e.g. from
# scripts/build_photo_set.sh; skipped without). "smoke" runs the same commands at tiny size
# (8-channel tiny networks, a handful of steps) into ROOT/smoke, to check the pipeline in minutes.
# One thread per process (OMP_NUM_THREADS=1): torch's default oversubscribes a 2-core machine.
set -euo pipefail
root=${1:?usage: scripts/converged_experiments.sh ROOT [full|smoke] [STAGE...]}
size=${2:-full}
shift $(( $# >= 2 ? 2 : 1 ))
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(data fm-k-sweep fm-gan-check fm-aux-ablation fm-generation
                                     photo-k-sweep)
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
case "$root" in "$here"|"$here"/*)
    echo "converged_experiments.sh: ROOT must be outside the work tree ($here)" >&2; exit 2;; esac

tuned_gan=(--set loss.gan_loss=non-saturating --set loss.r1_weight=1
           --set loss.adversarial_weight=0.3)
if [[ $size == full ]]; then
    fm_train=500 fm_test=20
    # budget 20,000 steps of batch 16 (the preset's own schedule length); scored every 500 steps
    # on 64 held-out images; stop after 4 scores without a 0.5% gain; bf16 only where the CPU
    # has bf16 matrix units (swycc's default: 1.6x on an AVX512-BF16 EPYC; forced on a CPU
    # without them, e.g. an AVX2-only Zen 3, a training step ran ~6x slower than fp32)
    model=(--preset paper-cpu)
    plateau=(--until-plateau --steps 20000 --plateau-every 500 --plateau-window 4
             --plateau-tol 0.005 --plateau-images 64)
    score=(--eval-images 200 --decode-steps 10)
    dit=(--dit-set dit.patch=1 --dit-set dit.hidden=96 --dit-set dit.depth=4
         --dit-set dit.heads=3 --dit-set train.lr=2e-4 --dit-steps 30000
         --dit-plateau-every 1000 --gen-images 400 --sample-steps 25)
    ks=(1 2 4 8)
elif [[ $size == smoke ]]; then
    root=$root/smoke fm_train=4 fm_test=1
    model=(--preset tiny --set model.encoder.base_channels=8 --set model.decoder.base_channels=8
           --set model.unet.base_channels=8 --batch-size 4)
    plateau=(--until-plateau --steps 4 --plateau-every 2 --plateau-window 1 --plateau-tol 0.005
             --plateau-images 4)
    score=(--eval-images 4 --decode-steps 2 --metrics psnr,ssim)
    dit=(--dit-preset dit-tiny --dit-steps 2 --dit-plateau-every 1 --gen-images 4
         --sample-steps 2 --metrics mmd_effnetlite0)
    ks=(4 8)
else
    echo "converged_experiments.sh: size must be full or smoke, got $size" >&2; exit 2
fi
fm=$root/data/fm
common=(--data "$fm/train" --eval-data "$fm/test" "${model[@]}" "${plateau[@]}" --no-progress)

run() {  # one resumable experiment; exit 75 (a signal) stops the script: re-run to go on
    echo "== $(date -u +%FT%TZ) swycc $*"
    "$py" -m swycc "$@"
}

cd "$here"
for stage in "${stages[@]}"; do
    case $stage in
    data)
        [[ -d $fm/test ]] || scripts/fashion_mnist.sh "$fm" "$fm_train" "$fm_test" ;;
    fm-k-sweep)  # Fig. 1 / Table 2 (SWYCC, then the tuned GAN; --methods keeps the arms apart)
        run experiment k-sweep "${common[@]}" "${score[@]}" --ks "${ks[@]}" --methods swycc \
            --out "$root/fm-k-sweep"
        run experiment k-sweep "${common[@]}" "${score[@]}" --ks "${ks[@]}" --methods gan \
            "${tuned_gan[@]}" --out "$root/fm-k-sweep-tuned-gan" ;;
    fm-gan-check)  # the converged tuned GAN against its decoder without the adversarial term
        run experiment gan-check "${common[@]}" "${score[@]}" "${tuned_gan[@]}" \
            --out "$root/fm-gan-check" ;;
    fm-aux-ablation)  # Table 1 at K = 4
        run experiment aux-ablation "${common[@]}" "${score[@]}" --out "$root/fm-aux-ablation" ;;
    fm-generation)  # Fig. 2: a DiT per autoencoder, each to its own plateau; in the k-sweep's
        # directories, so that the converged autoencoders are reused, not trained again
        run experiment generation "${common[@]}" "${dit[@]}" --decode-steps "${score[3]}" \
            --ks "${ks[@]}" --methods swycc --out "$root/fm-k-sweep"
        run experiment generation "${common[@]}" "${dit[@]}" --decode-steps "${score[3]}" \
            --ks "${ks[@]}" --methods gan "${tuned_gan[@]}" --out "$root/fm-k-sweep-tuned-gan" ;;
    photo-k-sweep)
        if [[ -z ${PHOTOS:-} ]]; then
            echo "== photo-k-sweep skipped: set PHOTOS=DIR (train/, test/)"; continue
        fi
        photo=(--data "$PHOTOS/train" --eval-data "$PHOTOS/test" --set data.eval_grid=4
               --set data.crop_scale_min=0.15 "${model[@]}" "${plateau[@]}" --no-progress)
        run experiment k-sweep "${photo[@]}" "${score[@]}" --ks "${ks[@]}" --methods swycc \
            --out "$root/photo-k-sweep"
        run experiment k-sweep "${photo[@]}" "${score[@]}" --ks "${ks[@]}" --methods gan \
            "${tuned_gan[@]}" --out "$root/photo-k-sweep-tuned-gan" ;;
    *) echo "converged_experiments.sh: unknown stage $stage" >&2; exit 2 ;;
    esac
done
echo "== $(date -u +%FT%TZ) done: $root"

//! The SIMD instruction set the kernels run, chosen at run time: one binary for any x86-64.
//!
//! - [`Isa::Avx512`]: AVX-512F (with AVX2 and FMA), gemm's 16-wide microkernels;
//! - [`Isa::Avx2`]: AVX2 and FMA, gemm's 8-wide microkernels;
//! - [`Isa::Portable`]: whatever the build's target allows (SSE2 on a plain x86-64 build),
//!   gemm's scalar kernels.
//!
//! The best set the CPU has is used, unless `FER_OPS_ISA` (`avx512`, `avx2`, `portable`) asks
//! for a lower one, or a program calls [`select`] (the tests and `fer-bench` compare the paths
//! in one process). A set the CPU lacks is refused: by [`select`] with an error, and from
//! `FER_OPS_ISA` with a line on stderr, the best set being used instead.
//!
//! Why by hand: gemm picks its kernels itself, once per process, and offers no way to ask for
//! another set, so the AVX-512 and AVX2 paths could never be run side by side. [`gemm`] calls
//! gemm's own generic driver (`gemm_common::gemm::gemm_basic_generic`) with the microkernels
//! of the set chosen here, exactly as gemm's dispatcher does with the set it picks. The other
//! kernels (batch norm, col2im) are plain Rust compiled once per set ([`multiversion`]).

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the kernels can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    Portable,
    Avx2,
    Avx512,
}

impl Isa {
    /// Every set, lowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name `FER_OPS_ISA` takes and `fer-bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    pub fn parse(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == s)
    }

    /// Whether this CPU runs it (the same test gemm's own SIMD types make).
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2 => gemm_common::simd::V3::try_new().is_some(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx512 => gemm_common::simd::V4::try_new().is_some(),
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
            _ => false,
        }
    }

    /// The best set this CPU runs.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.supported())
            .unwrap_or(Isa::Portable)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// 0: not chosen yet; else `Isa as u8 + 1`.
static SELECTED: AtomicU8 = AtomicU8::new(0);

fn encode(i: Isa) -> u8 {
    i as u8 + 1
}

fn decode(v: u8) -> Isa {
    Isa::ALL[(v - 1) as usize]
}

/// The set the kernels run: chosen on first use (see the module doc), or by [`select`].
pub fn selected() -> Isa {
    match SELECTED.load(Ordering::Relaxed) {
        0 => {
            let isa = from_env(std::env::var("FER_OPS_ISA").ok().as_deref());
            // A concurrent first use computes the same value.
            SELECTED.store(encode(isa), Ordering::Relaxed);
            isa
        }
        v => decode(v),
    }
}

/// `FER_OPS_ISA`'s choice: the named set if the CPU has it, else (with a line on stderr) the
/// best one.
fn from_env(value: Option<&str>) -> Isa {
    let best = Isa::best();
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return best;
    };
    match Isa::parse(v) {
        Some(i) if i.supported() => i,
        Some(i) => {
            eprintln!("fer-ops: FER_OPS_ISA={v}: this CPU has no {i}; using {best}");
            best
        }
        None => {
            eprintln!(
                "fer-ops: FER_OPS_ISA={v} is not one of avx512, avx2, portable; using {best}"
            );
            best
        }
    }
}

/// The error of [`select`]: the set the CPU lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub Isa);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "this CPU has no {} (best: {})", self.0, Isa::best())
    }
}

impl std::error::Error for Unsupported {}

/// Run the kernels on `isa` from now on, for the whole process.
pub fn select(isa: Isa) -> Result<(), Unsupported> {
    if !isa.supported() {
        return Err(Unsupported(isa));
    }
    SELECTED.store(encode(isa), Ordering::Relaxed);
    Ok(())
}

/// `dst[m, n] = alpha·dst + beta·lhs·rhs` (alpha is 0 unless `read_dst`), each matrix given
/// by a pointer and its column and row strides, single-threaded, on the [`selected`] set.
///
/// # Safety
/// As `gemm::gemm`: every element the strides address (m x n, m x k, k x n) is inside its
/// allocation, and `dst` aliases neither input.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: *const f32,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    rhs_rs: isize,
) {
    use gemm_common::Parallelism;
    #[allow(unused_macros)]
    macro_rules! run {
        ($simd:expr, $kernels:path, $n:literal) => {{
            use $kernels as k;
            // SAFETY: the caller's contract; `$simd` exists only when the CPU has the set.
            unsafe {
                gemm_common::gemm::gemm_basic_generic::<
                    _,
                    f32,
                    $n,
                    { k::MR_DIV_N * $n },
                    { k::NR },
                    { k::MR_DIV_N },
                    { k::H_M },
                    { k::H_N },
                >(
                    $simd,
                    m,
                    n,
                    k,
                    dst,
                    dst_cs,
                    dst_rs,
                    read_dst,
                    lhs,
                    lhs_cs,
                    lhs_rs,
                    rhs,
                    rhs_cs,
                    rhs_rs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    |a, b, c| a * b + c,
                    &k::UKR,
                    &k::H_UKR,
                    false,
                    Parallelism::None,
                )
            }
        }};
    }
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        use gemm_common::simd::{V3, V4};
        match selected() {
            Isa::Avx512 => {
                if let Some(s) = V4::try_new() {
                    return run!(s, gemm_f32::microkernel::avx512f::f32, 16);
                }
            }
            Isa::Avx2 => {
                if let Some(s) = V3::try_new() {
                    return run!(s, gemm_f32::microkernel::fma::f32, 8);
                }
            }
            Isa::Portable => {}
        }
        run!(
            gemm_common::simd::Scalar,
            gemm_f32::microkernel::scalar::f32,
            1
        )
    }
    // Elsewhere gemm's own dispatcher picks (NEON on aarch64).
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            read_dst,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Compile a function's body once per instruction set and call the [`selected`] one:
///
/// ```ignore
/// multiversion! {
///     /// Doc.
///     pub(crate) fn add(dst: &mut [f32], src: &[f32]) { for (d, s) in dst.iter_mut().zip(src) { *d += s } }
/// }
/// ```
///
/// The body is the same Rust in each copy (no intrinsics), so each copy gives the same
/// results as long as the body has no floating-point reduction whose order the compiler could
/// change (it never reorders float arithmetic), only wider vectors.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            {
                #[target_feature(enable = "avx,avx2,fma,avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::isa::selected() {
                    // SAFETY: `selected` is a set the CPU has.
                    $crate::isa::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::isa::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::isa::Isa::Portable => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_env_never_picks_a_missing_set() {
        for i in Isa::ALL {
            assert_eq!(Isa::parse(i.name()), Some(i));
        }
        assert!(Isa::best().supported());
        assert_eq!(from_env(None), Isa::best());
        assert_eq!(from_env(Some("")), Isa::best());
        assert_eq!(from_env(Some("sse9")), Isa::best());
        assert_eq!(from_env(Some("portable")), Isa::Portable);
        for i in Isa::ALL {
            let got = from_env(Some(i.name()));
            assert_eq!(got, if i.supported() { i } else { Isa::best() });
        }
    }
}

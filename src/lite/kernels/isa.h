// The instruction set the lite kernels choose their hot loops for: the machine's, capped
// by TESSERA_LITE_ISA (avx512, avx2 or portable), so that tests on one machine cover every
// path.
#pragma once

namespace tessera::lite {

enum class Isa { portable, avx2, avx512 };
Isa kernel_isa();
// AVX-512 with VNNI (8-bit dot products), unless capped (TESSERA_LITE_ISA=avx512 or lower).
bool kernel_vnni();

}  // namespace tessera::lite

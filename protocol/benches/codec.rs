//! Encode and decode costs of the two shapes that dominate TC traffic: a GlobalBegin frame and a
//! MergedWarpMessage of ten BranchRegisters (what a Java RM sends under load).
//!
//! Run: `cargo bench -p seata-protocol --bench codec`. Figures: `docs/PERFORMANCE.md`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use seata_protocol::frame::{msg_type, DEFAULT_MAX_FRAME_LEN};
use seata_protocol::message::{BranchRegisterRequest, GlobalBeginRequest, MergedWarpMessage};
use seata_protocol::{BranchType, CodecContext, Frame, Message, RpcCodec};
use tokio_util::codec::{Decoder, Encoder};

fn begin() -> Message {
    Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 60_000, transaction_name: "purchase".into() })
}

fn merged10() -> Message {
    let msgs = (0..10)
        .map(|i| {
            Message::BranchRegisterRequest(BranchRegisterRequest {
                xid: "192.168.1.10:8091:2612341069705662465".into(),
                branch_type: BranchType::AT,
                resource_id: "jdbc:mysql://127.0.0.1:3306/seata_stock".into(),
                lock_key: format!("stock_tbl:{i}"),
                application_data: "{\"autoCommit\":false}".into(),
            })
        })
        .collect();
    Message::MergedWarpMessage(MergedWarpMessage { msgs, msg_ids: Some((1..=10).collect()) })
}

fn bench(c: &mut Criterion) {
    let ctx = CodecContext::default();
    for (name, msg) in [("global_begin", begin()), ("merged_10_branch_register", merged10())] {
        let frame = Frame::with_message(msg_type::REQUEST, 7, &msg, &ctx, 0).unwrap();
        let mut wire = BytesMut::new();
        RpcCodec::default().encode(&frame, &mut wire).unwrap();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(u64::try_from(wire.len()).unwrap()));
        g.bench_function("encode", |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                out.clear();
                let f = Frame::with_message(msg_type::REQUEST, 7, black_box(&msg), &ctx, 0).unwrap();
                RpcCodec::default().encode(&f, &mut out).unwrap();
                black_box(&out);
            })
        });
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut buf = wire.clone();
                let f = RpcCodec::default().decode(black_box(&mut buf)).unwrap().unwrap();
                black_box(f.decode_message(&ctx, DEFAULT_MAX_FRAME_LEN).unwrap());
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

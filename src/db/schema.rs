// @generated automatically by Diesel CLI.

diesel::table! {
    concerts (id) {
        id -> Int8,
        title -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    payments (id) {
        id -> Int8,
        reservation_id -> Int8,
        user_id -> Int8,
        amount -> Int8,
        balance_after -> Int8,
        idempotency_key -> Nullable<Text>,
        status -> Text,
        paid_at -> Timestamptz,
        refunded_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    point_ledger (id) {
        id -> Int8,
        user_id -> Int8,
        delta -> Int8,
        reason -> Text,
        payment_id -> Nullable<Int8>,
        balance_after -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    reservations (id) {
        id -> Int8,
        user_id -> Int8,
        seat_id -> Int8,
        status -> Text,
        amount -> Int8,
        held_until -> Timestamptz,
        created_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    schedules (id) {
        id -> Int8,
        concert_id -> Int8,
        starts_at -> Timestamptz,
        seat_count -> Int4,
        price -> Int8,
    }
}

diesel::table! {
    seats (id) {
        id -> Int8,
        schedule_id -> Int8,
        seat_no -> Int4,
        price -> Int8,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        name -> Text,
        token_hash -> Bytea,
        balance -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(payments -> reservations (reservation_id));
diesel::joinable!(payments -> users (user_id));
diesel::joinable!(point_ledger -> payments (payment_id));
diesel::joinable!(point_ledger -> users (user_id));
diesel::joinable!(reservations -> seats (seat_id));
diesel::joinable!(reservations -> users (user_id));
diesel::joinable!(schedules -> concerts (concert_id));
diesel::joinable!(seats -> schedules (schedule_id));

diesel::allow_tables_to_appear_in_same_query!(
    concerts,
    payments,
    point_ledger,
    reservations,
    schedules,
    seats,
    users,
);
